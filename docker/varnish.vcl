# A self-hosted CDN in front of the read API: Varnish with varnish-modules' xkey, caching by our
# Cache-Control (s-maxage), tagging each object with our Surrogate-Key, and purging by key when the
# indexer sends `PURGE` with `xkey-purge: <keys>` (CDN_PURGER=xkey, CDN_PURGE_URL=http://varnish/).
# The test suite starts it with the backend host and port replaced (tests/integration/test_cdn_varnish.py).
# In compose (profile cdn) its backend is the gateway, as a CDN's origin is: one address in front of
# every API replica (a VCL backend host must resolve to exactly one address).
vcl 4.1;

import xkey;

backend api {
  .host = "gateway";
  .port = "8080";
  .connect_timeout = 1s;
  .first_byte_timeout = 5s;
}

# Who may purge: the indexer, from inside the network only.
acl purgers {
  "127.0.0.1";
  "::1";
  "10.0.0.0"/8;
  "172.16.0.0"/12;
  "192.168.0.0"/16;
}

sub vcl_recv {
  if (req.method == "PURGE") {
    if (client.ip !~ purgers) {
      return (synth(403, "Forbidden"));
    }
    if (!req.http.xkey-purge) {
      return (synth(400, "No xkey-purge header"));
    }
    set req.http.n-gone = xkey.purge(req.http.xkey-purge);
    return (synth(200, "Purged " + req.http.n-gone + " objects"));
  }
  # Never cached here: operator routes, anything with credentials, anything but GET and HEAD.
  if (req.url ~ "^/v1/admin/" || req.url ~ "^/metrics" || req.http.Authorization) {
    return (pass);
  }
  if (req.method != "GET" && req.method != "HEAD") {
    return (pass);
  }
  # Our responses do not depend on cookies.
  unset req.http.Cookie;
  return (hash);
}

sub vcl_backend_response {
  # xkey indexes objects by the space-separated keys of the `xkey` header.
  if (beresp.http.Surrogate-Key) {
    set beresp.http.xkey = beresp.http.Surrogate-Key;
  }
}

sub vcl_deliver {
  unset resp.http.xkey;
  if (obj.hits > 0) {
    set resp.http.X-CDN-Cache = "HIT";
  } else {
    set resp.http.X-CDN-Cache = "MISS";
  }
}
