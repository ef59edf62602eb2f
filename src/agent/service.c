/* hyperseaport service (service.h). */
#include "service.h"

#include <netdb.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "dataplane.h"
#include "hex.h"
#include "hyper_server.h"
#include "json.h"
#include "links.h"
#include "net.h"

#define DEREGISTER_WAIT_MS 2000
/* A connection that says nothing this long is taken for a plain one (a server-speaks-first
 * protocol behind an older client). Ours open their session as soon as their side of the
 * connect completes, which can be a second after the server side took the stream. */
#define SNIFF_MS 3000

typedef struct sniff {
  struct hsp_agent_service *s;
  hsp_dht_conn_t *conn;
  uv_timer_t timer;
  struct sniff *next;
} sniff_t;

struct hsp_agent_service {
  hsp_agent_service_config_t cfg;
  struct sockaddr_storage target;
  hsp_crypto_keypair_t kp;
  char key_hex[65];
  hsp_dht_server_t *server;
  hsp_reg_session_t *session;
  hsp_reg_client_t client;
  uv_timer_t timer;
  hsp_agent_links_t links;
  hsp_dp_service_t *dp;
  sniff_t *sniffs;
  int sniff_handles;
  bool want_registered; /* the health checks' verdict */
  bool drained, finishing, dp_open;
  bool was_up, down_reported, stopping, server_open, session_open, timer_open;
  int last_refusal;
  void (*stop_cb)(void *);
  void *stop_ctx;
};

static void pump(hsp_agent_service_t *s);

static void maybe_stopped(hsp_agent_service_t *s) {
  if (!s->stopping || s->server_open || s->session_open || s->timer_open || s->links.n ||
      s->dp_open || s->sniff_handles)
    return;
  free(s->links.v);
  hsp_crypto_keypair_wipe(&s->kp);
  sodium_memzero(&s->client, sizeof s->client);
  void (*cb)(void *) = s->stop_cb;
  void *ctx = s->stop_ctx;
  free(s);
  if (cb) cb(ctx);
}

/* ---- the data path ---- */

static void bridge_done(void *ctx, hsp_agent_bridge_t *b) {
  hsp_agent_service_t *s = ctx;
  hsp_agent_links_remove(&s->links, b);
  maybe_stopped(s);
}

static void plain(hsp_agent_service_t *s, hsp_dht_conn_t *conn, const uint8_t *first, size_t len) {
  hsp_agent_bridge_t *b = s->stopping ? NULL : hsp_agent_bridge_new(hsp_dht_io_loop(s->cfg.io), bridge_done, s);
  if (!b || hsp_agent_links_add(&s->links, b) != 0) {
    if (b) hsp_agent_bridge_close(b);
    hsp_dht_conn_destroy(conn);
    return;
  }
  hsp_agent_bridge_attach_first(b, conn, first, len);
  if (hsp_agent_bridge_connect(b, (const struct sockaddr *)&s->target) != 0) hsp_agent_bridge_close(b);
}

static void sniff_closed(uv_handle_t *h) {
  sniff_t *x = h->data;
  hsp_agent_service_t *s = x->s;
  free(x);
  s->sniff_handles--;
  maybe_stopped(s);
}

/* Done looking: the connection goes to a session, a bridge, or away. */
static void sniff_end(sniff_t *x) {
  hsp_agent_service_t *s = x->s;
  for (sniff_t **pp = &s->sniffs; *pp; pp = &(*pp)->next)
    if (*pp == x) {
      *pp = x->next;
      break;
    }
  x->conn = NULL;
  uv_close((uv_handle_t *)&x->timer, sniff_closed);
}

static void sniff_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  sniff_t *x = hsp_dht_conn_user(c);
  hsp_agent_service_t *s = x->s;
  sniff_end(x);
  if (len < 0) { /* ended before saying anything */
    hsp_dht_conn_set_callbacks(c, NULL, NULL, NULL);
    hsp_dht_conn_destroy(c);
    return;
  }
  if (hsp_dp_is_session_open(buf, (size_t)len) && s->dp) hsp_dp_service_connection(s->dp, c, buf, (size_t)len);
  else plain(s, c, buf, (size_t)len);
}

static void sniff_close(hsp_dht_conn_t *c, int status) {
  (void)status;
  sniff_t *x = hsp_dht_conn_user(c);
  if (x->conn) sniff_end(x);
}

static void sniff_timeout(uv_timer_t *t) {
  sniff_t *x = t->data;
  hsp_dht_conn_t *c = x->conn;
  hsp_agent_service_t *s = x->s;
  sniff_end(x);
  plain(s, c, NULL, 0);
}

static void on_connection(void *ctx, hsp_dht_conn_t *conn) {
  hsp_agent_service_t *s = ctx;
  sniff_t *x = s->stopping ? NULL : calloc(1, sizeof *x);
  if (!x) {
    hsp_dht_conn_destroy(conn);
    return;
  }
  x->s = s;
  x->conn = conn;
  uv_timer_init(hsp_dht_io_loop(s->cfg.io), &x->timer);
  x->timer.data = x;
  s->sniff_handles++;
  x->next = s->sniffs;
  s->sniffs = x;
  hsp_dht_conn_set_callbacks(conn, sniff_read, sniff_close, x);
  uv_timer_start(&x->timer, sniff_timeout, SNIFF_MS, 0);
}

static bool firewall(void *ctx, const uint8_t remote[32]) {
  (void)ctx, (void)remote;
  return false; /* whoever found the key in the registry may connect, as with the original */
}

/* ---- registration ---- */

static void on_timer(uv_timer_t *t) { pump(t->data); }

static void arm(hsp_agent_service_t *s) {
  uint64_t due = hsp_reg_client_next_timer(&s->client);
  if (due == UINT64_MAX || !hsp_reg_session_up(s->session)) {
    uv_timer_stop(&s->timer);
    return;
  }
  uint64_t now = hsp_reg_clock_ms();
  uv_timer_start(&s->timer, on_timer, due > now ? due - now : 0, 0);
}

static void pump(hsp_agent_service_t *s) {
  if (s->stopping || !s->want_registered || !hsp_reg_session_up(s->session)) return;
  uint8_t *msg;
  long n = hsp_reg_client_tick(&s->client, hsp_reg_clock_ms(), &msg);
  if (n > 0) {
    hsp_reg_session_send(s->session, msg, (size_t)n); /* lost with the connection: resent */
    free(msg);
  }
  arm(s);
}

/* ---- health verdicts ---- */

static void health_register(void *ud) {
  hsp_agent_service_t *s = ud;
  if (s->stopping) return;
  s->want_registered = true;
  s->client.due_ms = 0; /* now */
  pump(s);
}

static void health_deregister(void *ud) {
  hsp_agent_service_t *s = ud;
  s->want_registered = false;
  uv_timer_stop(&s->timer);
  if (!s->session || !hsp_reg_session_up(s->session) ||
      (s->client.state == HSP_REG_CLIENT_IDLE && !s->client.expires_ms))
    return; /* nothing registered (or the lease lapses by itself) */
  uint8_t *msg = NULL;
  long n = hsp_reg_client_deregister(&s->client, hsp_reg_clock_ms(), &msg);
  if (n > 0) hsp_reg_session_send(s->session, msg, (size_t)n);
  free(msg);
}

static void log_line(void *ud, const char *line) {
  hsp_agent_service_t *s = ud;
  fprintf(s->cfg.err, "hyperseaport %s\n", line);
  fflush(s->cfg.err);
}

static void print_registered(hsp_agent_service_t *s) {
  char json[HSP_REG_INSTANCE_JSON_MAX];
  const hsp_reg_instance_t *in = &s->client.inst;
  size_t at = (size_t)snprintf(json, sizeof json, "{\"id\":\"%s\",", s->key_hex);
  at = hsp_reg_role_json(json, sizeof json, at, in);
  if (at < sizeof json) snprintf(json + at, sizeof json - at, ",\"ttlMs\":%u}", (unsigned)in->ttl_ms);
  fprintf(s->cfg.out, "registered service %s\n", json);
  fflush(s->cfg.out);
}

static void finish_stop(hsp_agent_service_t *s);

static void on_message(void *ud, const uint8_t *msg, size_t len) {
  hsp_agent_service_t *s = ud;
  uint8_t type = s->client.pending_type;
  bool was_pending = s->client.pending_id != 0;
  int err = hsp_reg_client_receive(&s->client, msg, len, hsp_reg_clock_ms());
  if (s->stopping) {
    if (was_pending && s->client.pending_id == 0 && type == HSP_REG_MSG_DEREGISTER) {
      if (!err) fprintf(s->cfg.out, "deregistered service %s\n", s->key_hex);
      fflush(s->cfg.out);
      if (s->drained) finish_stop(s);
    }
    return;
  }
  if (!err && was_pending && s->client.pending_id == 0) {
    s->last_refusal = 0;
    if (type == HSP_REG_MSG_REGISTER) print_registered(s);
    if (type == HSP_REG_MSG_DEREGISTER) {
      fprintf(s->cfg.out, "deregistered service %s (unhealthy)\n", s->key_hex);
      fflush(s->cfg.out);
    }
  } else if (err && err != s->last_refusal && err != HSP_REG_ENOTFOUND) {
    s->last_refusal = err;
    fprintf(s->cfg.err, "hyperseaport service: the registry refused: %s\n", hsp_reg_strerror(err));
    fflush(s->cfg.err);
  }
  pump(s);
}

static void on_up(void *ud) {
  hsp_agent_service_t *s = ud;
  if (s->down_reported) {
    fprintf(s->cfg.err, "hyperseaport service: reconnected to registry\n");
    fflush(s->cfg.err);
  }
  s->was_up = true;
  s->down_reported = false;
  hsp_reg_client_reconnected(&s->client, hsp_reg_clock_ms());
  pump(s);
}

static void on_down(void *ud, int err) {
  hsp_agent_service_t *s = ud;
  uv_timer_stop(&s->timer);
  if (s->stopping) return;
  s->down_reported = true;
  fprintf(s->cfg.err, "hyperseaport service: %s registry: %s; retrying in the background\n",
          s->was_up ? "lost the connection to the" : "cannot reach the", hsp_dht_conn_strerror(err));
  fflush(s->cfg.err);
}

/* ---- start / stop ---- */

static int resolve(const char *host, int port, struct sockaddr_storage *out) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%d", port);
  if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res) return HSP_REG_EINVAL;
  /* IPv4 first: "localhost" services mostly listen on 127.0.0.1 */
  struct addrinfo *pick = res;
  for (struct addrinfo *a = res; a; a = a->ai_next)
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  memcpy(out, pick->ai_addr, pick->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

int hsp_agent_service_start(hsp_agent_service_t **out, const hsp_agent_service_config_t *cfg) {
  *out = NULL;
  hsp_agent_service_t *s = calloc(1, sizeof *s);
  if (!s) return HSP_REG_ENOMEM;
  s->cfg = *cfg;
  int err = resolve(cfg->host, cfg->port, &s->target);
  hsp_crypto_keypair_random(&s->kp);
  hsp_hex_encode(s->key_hex, s->kp.public_key, 32);
  char tags[32];
  snprintf(tags, sizeof tags, "{\"port\":%d}", cfg->port);
  if (!err)
    err = hsp_reg_client_init(&s->client, cfg->registry, s->kp.secret_key, cfg->name,
                              cfg->version, tags, cfg->ttl_ms);
  hsp_dp_service_config_t dcfg = {.target_addr = (const struct sockaddr *)&s->target,
                                  .drain_ms = cfg->drain_ms,
                                  .on_register = health_register,
                                  .on_deregister = health_deregister,
                                  .ud = s,
                                  .log = log_line,
                                  .log_ud = s};
  if (!err && hsp_health_parse(cfg->check ? cfg->check : "tcp", &dcfg.health) != 0) err = HSP_REG_EINVAL;
  dcfg.health.interval_ms = cfg->check_interval_ms;
  if (!err) err = hsp_dht_server_listen(&s->server, cfg->io, &s->kp, firewall, on_connection, s);
  if (err) {
    hsp_crypto_keypair_wipe(&s->kp);
    free(s);
    return err;
  }
  s->server_open = true;
  uv_timer_init(hsp_dht_io_loop(cfg->io), &s->timer);
  s->timer.data = s;
  s->timer_open = true;
  if (hsp_dp_service_start(&s->dp, hsp_dht_io_loop(cfg->io), &dcfg) == 0) s->dp_open = true;
  fprintf(cfg->out, "started p2p service on %s\n", s->key_hex);
  char reg[65];
  hsp_hex_encode(reg, cfg->registry, 32);
  fprintf(cfg->out, "connecting to registry %s\n", reg);
  fflush(cfg->out);
  hsp_reg_session_cbs_t cbs = {on_up, on_down, on_message};
  err = hsp_reg_session_start(&s->session, cfg->io, cfg->registry, &cbs, s);
  if (err) {
    hsp_agent_service_stop(s, NULL, NULL); /* released from the loop */
    return err;
  }
  s->session_open = true;
  *out = s;
  return 0;
}

static void server_closed(void *ctx) {
  hsp_agent_service_t *s = ctx;
  s->server_open = false;
  maybe_stopped(s);
}

static void session_closed(void *ctx) {
  hsp_agent_service_t *s = ctx;
  s->session_open = false;
  maybe_stopped(s);
}

static void timer_closed(uv_handle_t *h) {
  hsp_agent_service_t *s = h->data;
  s->timer_open = false;
  maybe_stopped(s);
}

static void dp_closed(void *ctx) {
  hsp_agent_service_t *s = ctx;
  s->dp_open = false;
  maybe_stopped(s);
}

static void finish_stop(hsp_agent_service_t *s) {
  if (s->finishing) return;
  s->finishing = true;
  uv_close((uv_handle_t *)&s->timer, timer_closed);
  if (s->session) hsp_reg_session_close(s->session, session_closed, s);
  if (s->server) {
    hsp_dht_server_t *srv = s->server;
    s->server = NULL;
    hsp_dht_server_close(srv, server_closed, s);
  }
  while (s->sniffs) {
    hsp_dht_conn_t *c = s->sniffs->conn;
    sniff_end(s->sniffs);
    hsp_dht_conn_set_callbacks(c, NULL, NULL, NULL);
    hsp_dht_conn_destroy(c);
  }
  hsp_agent_links_close_all(&s->links);
  if (s->dp) {
    hsp_dp_service_t *dp = s->dp;
    s->dp = NULL;
    hsp_dp_service_close(dp, dp_closed, s);
  }
}

static void deregister_timeout(uv_timer_t *t) { finish_stop(t->data); }

/* Every tunnel is done (or the drain time ran out): wait for the registry's answer to our
 * DEREGISTER if it has not come, then close. */
static void drained(void *ctx) {
  hsp_agent_service_t *s = ctx;
  s->drained = true;
  if (s->client.pending_id && s->client.pending_type == HSP_REG_MSG_DEREGISTER && s->session &&
      hsp_reg_session_up(s->session)) {
    uv_timer_start(&s->timer, deregister_timeout, DEREGISTER_WAIT_MS, 0);
    return;
  }
  finish_stop(s);
}

void hsp_agent_service_stop(hsp_agent_service_t *s, void (*cb)(void *ctx), void *ctx) {
  if (s->stopping) return;
  /* Deregister (the drain's on_deregister) before stopping, so it goes out signed. */
  s->stop_cb = cb;
  s->stop_ctx = ctx;
  if (!s->dp) {
    s->stopping = true;
    health_deregister(s);
    drained(s);
    return;
  }
  hsp_dp_service_drain(s->dp, drained, s); /* deregisters, GOAWAY, refuses new tunnels */
  s->stopping = true;
  /* No new connections: unannounce. Those handed over stay open. */
  if (s->server) {
    hsp_dht_server_t *srv = s->server;
    s->server = NULL;
    hsp_dht_server_close(srv, server_closed, s);
  }
}
