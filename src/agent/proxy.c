/* hyperseaport proxy (proxy.h). */
#include "proxy.h"

#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "json.h"
#include "links.h"
#include "net.h"
#include "open.h"
#include "protocol.h"

/* Request ids on the registry session. */
enum { ID_PROBE = 1, ID_SNAPSHOT = 2, ID_WATCH = 3 };
/* Further behind than this, a snapshot is cheaper than replaying the log. */
#define FAR_BEHIND 4096

typedef struct pending_open {
  hsp_agent_proxy_t *proxy;
  hsp_agent_bridge_t *bridge;
} pending_open_t;

struct hsp_agent_proxy {
  hsp_agent_proxy_config_t cfg;
  hsp_reg_replica_t *replica;
  hsp_reg_session_t *session;
  hsp_crypto_keypair_t kp;
  uv_tcp_t listener;
  hsp_agent_links_t links;
  int opening; /* connects in flight */
  bool listener_open, session_open, stopping, was_up, down_reported, have_choice, said_none;
  uint8_t choice[32]; /* first candidate last announced */
  int last_sync_err;
  bool resyncing; /* a SNAPSHOT asked after ECHAIN may replace a newer replica */
  void (*stop_cb)(void *);
  void *stop_ctx;
};

static void maybe_stopped(hsp_agent_proxy_t *p) {
  if (!p->stopping || p->listener_open || p->session_open || p->links.n || p->opening) return;
  hsp_reg_replica_close(p->replica);
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
    if (!p->said_none && (p->have_choice || p->was_up)) {
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
                               "{\"id\":\"%s\",\"remotePublicKey\":\"%s\",\"meta\":{", key, key);
  at = hsp_reg_role_json(json, sizeof json, at, &best);
  if (at < sizeof json) snprintf(json + at, sizeof json - at, "}}");
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

static void request(hsp_agent_proxy_t *p, uint8_t type, uint64_t id, uint64_t seq, uint64_t limit) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = id;
  m.type = type;
  m.seq = seq;
  m.limit = limit;
  uint8_t buf[64];
  long n = hsp_reg_msg_encode(&m, buf, sizeof buf);
  if (n > 0) hsp_reg_session_send(p->session, buf, (size_t)n);
}

static void sync_failed(hsp_agent_proxy_t *p, int err) {
  if (err == p->last_sync_err) return;
  p->last_sync_err = err;
  fprintf(p->cfg.err, "hyperseaport proxy: cannot follow the registry: %s\n", hsp_reg_strerror(err));
  fflush(p->cfg.err);
}

/* The registry cannot extend our log (it compacted past our head, or it was restored from
 * an older copy, or lost its store): start over from a snapshot. What we hold keeps
 * serving until the snapshot is there; one older than ours (a registry that went back in
 * time) replaces it only here, on the registry's own word over its authenticated stream. */
static void resync(hsp_agent_proxy_t *p) {
  p->resyncing = true;
  request(p, HSP_REG_MSG_SNAPSHOT, ID_SNAPSHOT, 0, 0);
}

static void on_message(void *ud, const uint8_t *msg, size_t len) {
  hsp_agent_proxy_t *p = ud;
  hsp_cenc_t c = hsp_cenc_for_decode(msg, len);
  hsp_cenc_decode_uint8(&c);
  uint64_t id = hsp_cenc_decode_uint(&c);
  if (!hsp_cenc_ok(&c)) return;
  if (id == ID_PROBE) {
    hsp_reg_msg_t m;
    if (hsp_reg_msg_decode(&m, msg, len) != 0) return;
    uint64_t head = m.seq;
    bool entries = m.type == HSP_REG_MSG_ENTRIES;
    int code = m.type == HSP_REG_MSG_ERROR ? m.code : 0;
    hsp_reg_msg_free(&m);
    if (code == HSP_REG_ECHAIN) {
      resync(p);
      return;
    }
    if (!entries) {
      sync_failed(p, code ? code : HSP_REG_EINVAL);
      return;
    }
    int err = hsp_reg_replica_receive(p->replica, msg, len);
    if (err == HSP_REG_ECHAIN) { /* a different history at our head */
      resync(p);
      return;
    }
    uint64_t seq = hsp_reg_replica_seq(p->replica);
    if (head > seq && head - seq > FAR_BEHIND) {
      fprintf(p->cfg.out, "replica %llu entries behind the registry: taking a snapshot\n",
              (unsigned long long)(head - seq));
      fflush(p->cfg.out);
      request(p, HSP_REG_MSG_SNAPSHOT, ID_SNAPSHOT, 0, 0);
    } else {
      request(p, HSP_REG_MSG_WATCH, ID_WATCH, seq, 0);
    }
  } else if (id == ID_SNAPSHOT) {
    int err = hsp_reg_replica_receive(p->replica, msg, len);
    if (err == HSP_REG_EREPLAY && p->resyncing) {
      err = hsp_reg_replica_reset(p->replica);
      if (!err) err = hsp_reg_replica_receive(p->replica, msg, len);
    }
    p->resyncing = false;
    if (err < 0 && err != HSP_REG_EREPLAY) sync_failed(p, err);
    /* EREPLAY: older than what we hold; WATCH tells whether our history still stands */
    request(p, HSP_REG_MSG_WATCH, ID_WATCH, hsp_reg_replica_seq(p->replica), 0);
  } else if (id == ID_WATCH) {
    int err = hsp_reg_replica_receive(p->replica, msg, len);
    if (err == HSP_REG_ECHAIN) resync(p);
    else if (err < 0) sync_failed(p, err);
    else p->last_sync_err = 0;
  }
  announce_choice(p);
}

static void on_up(void *ud) {
  hsp_agent_proxy_t *p = ud;
  if (p->down_reported) fprintf(p->cfg.err, "hyperseaport proxy: reconnected to registry\n");
  else if (!p->was_up) fprintf(p->cfg.out, "connected to registry\n");
  fflush(p->cfg.out);
  fflush(p->cfg.err);
  p->was_up = true;
  p->down_reported = false;
  uint64_t seq = hsp_reg_replica_seq(p->replica);
  if (seq == 0) request(p, HSP_REG_MSG_SNAPSHOT, ID_SNAPSHOT, 0, 0);
  else request(p, HSP_REG_MSG_SYNC, ID_PROBE, seq, 1);
}

static void on_down(void *ud, int err) {
  hsp_agent_proxy_t *p = ud;
  if (p->stopping) return;
  p->down_reported = true;
  fprintf(p->cfg.err,
          "hyperseaport proxy: %s registry: %s; serving from the local replica (%zu instances) "
          "and retrying in the background\n",
          p->was_up ? "lost the connection to the" : "cannot reach the",
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
  *msg = "cannot open the replica";
  int err = hsp_reg_replica_open(&p->replica, cfg->replica_path, cfg->registry);
  if (err) {
    free(p);
    return err;
  }
  *msg = "cannot listen";
  uv_loop_t *loop = hsp_dht_io_loop(cfg->io);
  struct sockaddr_storage sa;
  err = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&sa);
  if (err) err = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&sa);
  if (!err) err = uv_tcp_init(loop, &p->listener);
  if (err) {
    hsp_reg_replica_close(p->replica);
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
  hsp_reg_session_cbs_t cbs = {on_up, on_down, on_message};
  *msg = "cannot start the registry session";
  err = hsp_reg_session_start(&p->session, cfg->io, cfg->registry, &cbs, p);
  if (err) {
    hsp_agent_proxy_stop(p, NULL, NULL);
    return err;
  }
  p->session_open = true;
  *out = p;
  return 0;
}

static void listener_closed(uv_handle_t *h) {
  hsp_agent_proxy_t *p = h->data;
  p->listener_open = false;
  maybe_stopped(p);
}

static void session_closed(void *ctx) {
  hsp_agent_proxy_t *p = ctx;
  p->session_open = false;
  maybe_stopped(p);
}

void hsp_agent_proxy_stop(hsp_agent_proxy_t *p, void (*cb)(void *ctx), void *ctx) {
  if (p->stopping) return;
  p->stopping = true;
  p->stop_cb = cb;
  p->stop_ctx = ctx;
  if (p->session) hsp_reg_session_close(p->session, session_closed, p);
  uv_close((uv_handle_t *)&p->listener, listener_closed);
  hsp_agent_links_close_all(&p->links);
}
