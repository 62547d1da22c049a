"""Protocol core: wire codecs (V2 JSON, the binary tensor extension, raw tensor bytes, pandas)."""
