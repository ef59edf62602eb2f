#include "health.h"

#include <stdio.h>
#include <string.h>

int hsp_health_parse(const char *spec, hsp_health_config_t *cfg) {
  if (!spec) return -1;
  if (strcmp(spec, "tcp") == 0) {
    cfg->kind = HSP_HEALTH_TCP;
    cfg->path[0] = 0;
    return 0;
  }
  if (strcmp(spec, "none") == 0) {
    cfg->kind = HSP_HEALTH_NONE;
    cfg->path[0] = 0;
    return 0;
  }
  if (strncmp(spec, "http:", 5) != 0) return -1;
  const char *path = spec + 5;
  size_t n = strlen(path);
  if (n == 0 || n > HSP_HEALTH_PATH_MAX || path[0] != '/') return -1;
  for (size_t i = 0; i < n; i++)
    if (path[i] <= 0x20 || path[i] >= 0x7f) return -1; /* goes into a request line as is */
  cfg->kind = HSP_HEALTH_HTTP;
  memcpy(cfg->path, path, n + 1);
  return 0;
}

void hsp_health_init(hsp_health_t *h, const hsp_health_config_t *cfg, uint64_t now_ms) {
  memset(h, 0, sizeof *h);
  h->cfg = *cfg;
  if (!h->cfg.interval_ms) h->cfg.interval_ms = 5000;
  if (!h->cfg.timeout_ms) h->cfg.timeout_ms = 2000;
  if (!h->cfg.fall) h->cfg.fall = 3;
  if (!h->cfg.rise) h->cfg.rise = 1;
  h->next_ms = now_ms;
}

hsp_health_action_t hsp_health_start(hsp_health_t *h) {
  if (h->cfg.kind != HSP_HEALTH_NONE || h->registered) return HSP_HEALTH_NOTHING;
  h->registered = h->ever_registered = true;
  return HSP_HEALTH_REGISTER;
}

bool hsp_health_due(hsp_health_t *h, uint64_t now_ms) {
  if (h->cfg.kind == HSP_HEALTH_NONE || h->checking || now_ms < h->next_ms) return false;
  h->checking = true;
  return true;
}

hsp_health_action_t hsp_health_result(hsp_health_t *h, uint64_t now_ms, bool ok) {
  if (!h->checking) return HSP_HEALTH_NOTHING;
  h->checking = false;
  h->next_ms = now_ms + h->cfg.interval_ms;
  if (ok) {
    h->fails = 0;
    if (h->oks < UINT32_MAX) h->oks++;
    /* The very first success registers at once: startup should not wait `rise` intervals. */
    if (!h->registered && (h->oks >= h->cfg.rise || !h->ever_registered)) {
      h->registered = h->ever_registered = true;
      return HSP_HEALTH_REGISTER;
    }
    return HSP_HEALTH_NOTHING;
  }
  h->oks = 0;
  if (h->fails < UINT32_MAX) h->fails++;
  if (h->registered && h->fails >= h->cfg.fall) {
    h->registered = false;
    return HSP_HEALTH_DEREGISTER;
  }
  return HSP_HEALTH_NOTHING;
}

uint64_t hsp_health_next(const hsp_health_t *h) {
  return h->cfg.kind == HSP_HEALTH_NONE ? UINT64_MAX : h->next_ms;
}

int hsp_health_http_request(const hsp_health_config_t *cfg, const char *host, char *out,
                            size_t cap) {
  int n = snprintf(out, cap,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hyperseaport-health\r\n"
                   "Connection: close\r\n\r\n",
                   cfg->path[0] ? cfg->path : "/", host);
  return n < 0 || (size_t)n >= cap ? -1 : n;
}

static int on_headers(void *data, const hsp_http_message_t *msg) {
  hsp_health_http_t *x = data;
  if (msg->status >= 200) {
    x->status = msg->status;
    return HSP_HTTP_PAUSE; /* the status is all a check needs */
  }
  return 0; /* interim 1xx: the final response follows */
}

static const hsp_http_callbacks_t health_cb = {.on_headers_complete = on_headers};

void hsp_health_http_init(hsp_health_http_t *x) {
  memset(x, 0, sizeof *x);
  hsp_http_parser_init(&x->parser, HSP_HTTP_RESPONSE, &health_cb, x, x->scratch,
                       sizeof x->scratch, NULL);
}

int hsp_health_http_feed(hsp_health_http_t *x, const uint8_t *p, size_t len) {
  if (x->status) return x->status >= 200 && x->status < 400;
  if (len == 0) return 0; /* closed before a final status */
  size_t used;
  int rc = hsp_http_parser_execute(&x->parser, p, len, &used);
  if (x->status) return x->status >= 200 && x->status < 400;
  return rc < 0 ? 0 : -1;
}

bool hsp_drain_start(hsp_drain_t *d, uint64_t now_ms, uint64_t drain_ms) {
  if (d->state != HSP_DRAIN_RUNNING) return false;
  d->state = HSP_DRAIN_DRAINING;
  d->deadline_ms = now_ms + drain_ms;
  return true;
}

hsp_drain_verdict_t hsp_drain_poll(hsp_drain_t *d, uint64_t now_ms, size_t open_connections) {
  if (d->state == HSP_DRAIN_RUNNING) return HSP_DRAIN_WAIT;
  if (d->state == HSP_DRAIN_DONE) return HSP_DRAIN_EXIT;
  if (open_connections == 0) {
    d->state = HSP_DRAIN_DONE;
    return HSP_DRAIN_EXIT;
  }
  if (now_ms >= d->deadline_ms) {
    d->state = HSP_DRAIN_DONE;
    return HSP_DRAIN_FORCE;
  }
  return HSP_DRAIN_WAIT;
}
