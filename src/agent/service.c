/* hyperseaport service (service.h). */
#include "service.h"

#include <netdb.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "hex.h"
#include "hyper_server.h"
#include "json.h"
#include "links.h"
#include "net.h"

#define DEREGISTER_WAIT_MS 2000

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
  bool was_up, down_reported, stopping, server_open, session_open, timer_open;
  int last_refusal;
  void (*stop_cb)(void *);
  void *stop_ctx;
};

static void pump(hsp_agent_service_t *s);

static void maybe_stopped(hsp_agent_service_t *s) {
  if (!s->stopping || s->server_open || s->session_open || s->timer_open || s->links.n) return;
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

static void on_connection(void *ctx, hsp_dht_conn_t *conn) {
  hsp_agent_service_t *s = ctx;
  hsp_agent_bridge_t *b = s->stopping ? NULL : hsp_agent_bridge_new(hsp_dht_io_loop(s->cfg.io), bridge_done, s);
  if (!b || hsp_agent_links_add(&s->links, b) != 0) {
    if (b) hsp_agent_bridge_close(b);
    hsp_dht_conn_destroy(conn);
    return;
  }
  hsp_agent_bridge_attach(b, conn);
  if (hsp_agent_bridge_connect(b, (const struct sockaddr *)&s->target) != 0) hsp_agent_bridge_close(b);
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
  if (s->stopping || !hsp_reg_session_up(s->session)) return;
  uint8_t *msg;
  long n = hsp_reg_client_tick(&s->client, hsp_reg_clock_ms(), &msg);
  if (n > 0) {
    hsp_reg_session_send(s->session, msg, (size_t)n); /* lost with the connection: resent */
    free(msg);
  }
  arm(s);
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
      finish_stop(s);
    }
    return;
  }
  if (!err && was_pending && s->client.pending_id == 0) {
    s->last_refusal = 0;
    if (type == HSP_REG_MSG_REGISTER) print_registered(s);
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
  if (!err) err = hsp_dht_server_listen(&s->server, cfg->io, &s->kp, firewall, on_connection, s);
  if (err) {
    hsp_crypto_keypair_wipe(&s->kp);
    free(s);
    return err;
  }
  s->server_open = true;
  fprintf(cfg->out, "started p2p service on %s\n", s->key_hex);
  char reg[65];
  hsp_hex_encode(reg, cfg->registry, 32);
  fprintf(cfg->out, "connecting to registry %s\n", reg);
  fflush(cfg->out);
  uv_timer_init(hsp_dht_io_loop(cfg->io), &s->timer);
  s->timer.data = s;
  s->timer_open = true;
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

static void finish_stop(hsp_agent_service_t *s) {
  if (uv_is_closing((uv_handle_t *)&s->timer)) return;
  uv_close((uv_handle_t *)&s->timer, timer_closed);
  if (s->session) hsp_reg_session_close(s->session, session_closed, s);
  hsp_dht_server_close(s->server, server_closed, s);
  hsp_agent_links_close_all(&s->links);
}

static void deregister_timeout(uv_timer_t *t) { finish_stop(t->data); }

void hsp_agent_service_stop(hsp_agent_service_t *s, void (*cb)(void *ctx), void *ctx) {
  if (s->stopping) return;
  s->stopping = true;
  s->stop_cb = cb;
  s->stop_ctx = ctx;
  uint8_t *msg = NULL;
  long n = 0;
  if (s->session && hsp_reg_session_up(s->session) &&
      (s->client.state != HSP_REG_CLIENT_IDLE || s->client.expires_ms))
    n = hsp_reg_client_deregister(&s->client, hsp_reg_clock_ms(), &msg);
  if (n > 0 && hsp_reg_session_send(s->session, msg, (size_t)n) == 0) {
    free(msg);
    uv_timer_start(&s->timer, deregister_timeout, DEREGISTER_WAIT_MS, 0);
    return;
  }
  free(msg);
  finish_stop(s);
}
