# One image for everything modelplane runs on Kubernetes: the model server (the entrypoint, as KServe's runtime
# images), `modelplane storage-initializer`, `modelplane agent` and `modelplane operator` (set as the command).
# Not built in this repository's CI: the machines it runs on have no container engine.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir "uv>=0.9" \
 && uv pip install --system --no-cache ".[sklearn,xgboost,lightgbm,storage,kubernetes]"

FROM python:3.11-slim
COPY --from=build /usr/local /usr/local
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin modelplane
USER 1000
ENV MODELPLANE_HOME=/tmp/modelplane PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080 8081
ENTRYPOINT ["modelplane", "serve"]
