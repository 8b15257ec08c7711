# Node-API addon: SO_REUSEPORT listening sockets (reuseport.c). Built by scripts/build-native.mjs
# during `npm ci` against the local Node headers (--nodedir), so node-gyp never downloads any.
{
  "targets": [
    {
      "target_name": "reuseport",
      "sources": ["reuseport.c"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
