/* hyperseaport proxy (proxy.h). */
#include "proxy.h"

#include <stdlib.h>
#include <string.h>

#include "follow.h"
#include "hex.h"
#include "json.h"
#include "links.h"
#include "net.h"
#include "open.h"

typedef struct pending_open {
  hsp_agent_proxy_t *proxy;
  hsp_agent_bridge_t *bridge;
} pending_open_t;

struct hsp_agent_proxy {
  hsp_agent_proxy_config_t cfg;
  hsp_agent_follow_t *follow;
  hsp_reg_replica_t *replica; /* the follower's */
  hsp_crypto_keypair_t kp;
  uv_tcp_t listener;
  hsp_agent_links_t links;
  int opening; /* connects in flight */
  bool listener_open, follow_open, stopping, have_choice, said_none;
  uint8_t choice[32]; /* first candidate last announced */
  void (*stop_cb)(void *);
  void *stop_ctx;
};

static void maybe_stopped(hsp_agent_proxy_t *p) {
  if (!p->stopping || p->listener_open || p->follow_open || p->links.n || p->opening) return;
  free(p->links.v);
  hsp_crypto_keypair_wipe(&p->kp);
  void (*cb)(void *) = p->stop_cb;
  void *ctx = p->stop_ctx;
  free(p);
  if (cb) cb(ctx);
}

/* ---- what to connect to ---- */

static void announce_choice(hsp_agent_proxy_t *p) {
  hsp_reg_instance_t best;
  long n = hsp_agent_select(p->replica, p->cfg.name, p->cfg.range, &best, 1);
  if (n <= 0) {
    if (!p->said_none && (p->have_choice || (p->follow && hsp_agent_follow_was_up(p->follow)))) {
      fprintf(p->cfg.out, "no service matches %s@%s (yet)\n", p->cfg.name, p->cfg.range);
      fflush(p->cfg.out);
      p->said_none = true;
    }
    p->have_choice = false;
    return;
  }
  if (p->have_choice && memcmp(p->choice, best.key, 32) == 0) return;
  p->have_choice = true;
  p->said_none = false;
  memcpy(p->choice, best.key, 32);
  char key[65], json[HSP_REG_INSTANCE_JSON_MAX];
  hsp_hex_encode(key, best.key, 32);
  size_t at = (size_t)snprintf(json, sizeof json,
                               "{\"id\":\"%s\",\"remotePublicKey\":\"%s\",\"meta\":{\"role\":", key, key);
  at = hsp_json_string(json, sizeof json, at, best.name);
  at += (size_t)snprintf(json + at, sizeof json - at, ",\"version\":");
  at = hsp_json_string(json, sizeof json, at, best.version);
  at += (size_t)snprintf(json + at, sizeof json - at, ",\"tags\":");
  at = hsp_json_string(json, sizeof json, at, best.tags);
  snprintf(json + at, sizeof json - at, "}}");
  fprintf(p->cfg.out, "found service %s\nproxy from %d to p2p service %s\n", json, p->cfg.port, key);
  fflush(p->cfg.out);
}

/* ---- the data path ---- */

static void bridge_done(void *ctx, hsp_agent_bridge_t *b) {
  hsp_agent_proxy_t *p = ctx;
  hsp_agent_links_remove(&p->links, b);
  maybe_stopped(p);
}

static void on_open(void *ctx, hsp_dht_conn_t *conn, const uint8_t key[32], int err) {
  (void)key;
  pending_open_t *po = ctx;
  hsp_agent_proxy_t *p = po->proxy;
  hsp_agent_bridge_t *b = po->bridge;
  free(po);
  p->opening--;
  if (err || p->stopping || hsp_agent_links_add(&p->links, b) != 0) {
    if (conn) hsp_dht_conn_destroy(conn);
    if (err && !p->stopping) {
      fprintf(p->cfg.err, "hyperseaport proxy: no instance of %s@%s could be reached: %s\n",
              p->cfg.name, p->cfg.range, hsp_dht_conn_strerror(err));
      fflush(p->cfg.err);
    }
    /* not in links: close it here (its done callback finds nothing to remove) */
    hsp_agent_links_add(&p->links, b);
    hsp_agent_bridge_close(b);
    return;
  }
  hsp_agent_bridge_attach(b, conn);
}

static void on_accept(uv_stream_t *server, int status) {
  hsp_agent_proxy_t *p = server->data;
  if (status < 0 || p->stopping) return;
  hsp_agent_bridge_t *b = hsp_agent_bridge_new(server->loop, bridge_done, p);
  if (!b) return;
  if (uv_accept(server, (uv_stream_t *)hsp_agent_bridge_tcp(b)) != 0) {
    hsp_agent_links_add(&p->links, b);
    hsp_agent_bridge_close(b);
    return;
  }
  hsp_agent_bridge_tcp_ready(b); /* nothing flows until the instance is connected */
  hsp_reg_instance_t cand[HSP_AGENT_OPEN_MAX];
  long n = hsp_agent_select(p->replica, p->cfg.name, p->cfg.range, cand, HSP_AGENT_OPEN_MAX);
  uint8_t keys[HSP_AGENT_OPEN_MAX][32];
  for (long i = 0; i < n; i++) memcpy(keys[i], cand[i].key, 32);
  pending_open_t *po = n > 0 ? malloc(sizeof *po) : NULL;
  int err = po ? 0 : HSP_DHT_CONN_ENOTFOUND;
  if (po) {
    *po = (pending_open_t){p, b};
    err = hsp_agent_open(p->cfg.io, &p->kp, (const uint8_t (*)[32])keys, (size_t)n, on_open, po);
    if (err) free(po);
    else p->opening++;
  }
  if (err) {
    hsp_agent_links_add(&p->links, b);
    hsp_agent_bridge_close(b);
  }
}

/* ---- the replica ---- */

static void on_sync_error(void *ud, int err) {
  hsp_agent_proxy_t *p = ud;
  fprintf(p->cfg.err, "hyperseaport proxy: cannot follow the registry: %s\n", hsp_reg_strerror(err));
  fflush(p->cfg.err);
}

static void on_change(void *ud) { announce_choice(ud); }

static void on_snapshot(void *ud, uint64_t behind) {
  hsp_agent_proxy_t *p = ud;
  fprintf(p->cfg.out, "replica %llu entries behind the registry: taking a snapshot\n",
          (unsigned long long)behind);
  fflush(p->cfg.out);
}

static void on_up(void *ud, bool again) {
  hsp_agent_proxy_t *p = ud;
  if (again) fprintf(p->cfg.err, "hyperseaport proxy: reconnected to registry\n");
  else if (!hsp_agent_follow_was_up(p->follow)) fprintf(p->cfg.out, "connected to registry\n");
  fflush(p->cfg.out);
  fflush(p->cfg.err);
}

static void on_down(void *ud, bool was_up, int err) {
  hsp_agent_proxy_t *p = ud;
  if (p->stopping) return;
  fprintf(p->cfg.err,
          "hyperseaport proxy: %s registry: %s; serving from the local replica (%zu instances) "
          "and retrying in the background\n",
          was_up ? "lost the connection to the" : "cannot reach the",
          hsp_dht_conn_strerror(err), hsp_reg_replica_count(p->replica));
  fflush(p->cfg.err);
}

/* ---- start / stop ---- */

int hsp_agent_proxy_start(hsp_agent_proxy_t **out, const hsp_agent_proxy_config_t *cfg,
                          const char **msg) {
  *out = NULL;
  hsp_agent_proxy_t *p = calloc(1, sizeof *p);
  if (!p) return HSP_REG_ENOMEM;
  p->cfg = *cfg;
  *msg = "cannot open the replica or start the registry session";
  hsp_agent_follow_cbs_t cbs = {on_change, on_up, on_down, on_sync_error, on_snapshot};
  int err = hsp_agent_follow_start(&p->follow, cfg->io, cfg->registry, cfg->replica_path, &cbs, p);
  if (err) {
    free(p);
    return err;
  }
  p->follow_open = true;
  p->replica = hsp_agent_follow_replica(p->follow);
  *msg = "cannot listen";
  uv_loop_t *loop = hsp_dht_io_loop(cfg->io);
  struct sockaddr_storage sa;
  err = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&sa);
  if (err) err = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&sa);
  if (!err) err = uv_tcp_init(loop, &p->listener);
  if (err) {
    hsp_agent_follow_stop(p->follow, NULL, NULL);
    free(p);
    return err;
  }
  p->listener.data = p;
  p->listener_open = true;
  err = uv_tcp_bind(&p->listener, (const struct sockaddr *)&sa, 0);
  if (!err) err = uv_listen((uv_stream_t *)&p->listener, 128, on_accept);
  hsp_crypto_keypair_random(&p->kp);
  if (err) {
    hsp_agent_proxy_stop(p, NULL, NULL); /* released from the loop */
    return err;
  }
  fprintf(cfg->out, "connecting to registry\n");
  fflush(cfg->out);
  announce_choice(p); /* what the replica on disk already knows */
  *out = p;
  return 0;
}

static void listener_closed(uv_handle_t *h) {
  hsp_agent_proxy_t *p = h->data;
  p->listener_open = false;
  maybe_stopped(p);
}

static void follow_closed(void *ctx) {
  hsp_agent_proxy_t *p = ctx;
  p->follow_open = false;
  maybe_stopped(p);
}

void hsp_agent_proxy_stop(hsp_agent_proxy_t *p, void (*cb)(void *ctx), void *ctx) {
  if (p->stopping) return;
  p->stopping = true;
  p->stop_cb = cb;
  p->stop_ctx = ctx;
  if (p->follow_open) hsp_agent_follow_stop(p->follow, follow_closed, p);
  uv_close((uv_handle_t *)&p->listener, listener_closed);
  hsp_agent_links_close_all(&p->links);
}
