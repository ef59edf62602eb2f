/* Following the registry into a local replica (follow.h). */
#include "follow.h"

#include <stdlib.h>
#include <string.h>

#include "compact.h"
#include "net.h"
#include "protocol.h"

/* Request ids on the registry session. */
enum { ID_PROBE = 1, ID_SNAPSHOT = 2, ID_WATCH = 3 };
/* Further behind than this, a snapshot is cheaper than replaying the log. */
#define FAR_BEHIND 4096

struct hsp_agent_follow {
  hsp_reg_replica_t *replica;
  hsp_reg_session_t *session;
  hsp_agent_follow_cbs_t cbs;
  void *ud;
  bool stopping, was_up, down_reported;
  int last_sync_err;
  bool resyncing; /* a SNAPSHOT asked after ECHAIN may replace a newer replica */
  void (*stop_cb)(void *);
  void *stop_ctx;
};

static void request(hsp_agent_follow_t *f, uint8_t type, uint64_t id, uint64_t seq,
                    uint64_t limit) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = id;
  m.type = type;
  m.seq = seq;
  m.limit = limit;
  uint8_t buf[64];
  long n = hsp_reg_msg_encode(&m, buf, sizeof buf);
  if (n > 0) hsp_reg_session_send(f->session, buf, (size_t)n);
}

static void sync_failed(hsp_agent_follow_t *f, int err) {
  if (err == f->last_sync_err) return;
  f->last_sync_err = err;
  if (f->cbs.on_sync_error) f->cbs.on_sync_error(f->ud, err);
}

/* The registry cannot extend our log (it compacted past our head, or it was restored from
 * an older copy, or lost its store): start over from a snapshot. What we hold keeps
 * serving until the snapshot is there; one older than ours (a registry that went back in
 * time) replaces it only here, on the registry's own word over its authenticated stream. */
static void resync(hsp_agent_follow_t *f) {
  f->resyncing = true;
  request(f, HSP_REG_MSG_SNAPSHOT, ID_SNAPSHOT, 0, 0);
}

static void on_message(void *ud, const uint8_t *msg, size_t len) {
  hsp_agent_follow_t *f = ud;
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
      resync(f);
      return;
    }
    if (!entries) {
      sync_failed(f, code ? code : HSP_REG_EINVAL);
      return;
    }
    int err = hsp_reg_replica_receive(f->replica, msg, len);
    if (err == HSP_REG_ECHAIN) { /* a different history at our head */
      resync(f);
      return;
    }
    uint64_t seq = hsp_reg_replica_seq(f->replica);
    if (head > seq && head - seq > FAR_BEHIND) {
      if (f->cbs.on_snapshot) f->cbs.on_snapshot(f->ud, head - seq);
      request(f, HSP_REG_MSG_SNAPSHOT, ID_SNAPSHOT, 0, 0);
    } else {
      request(f, HSP_REG_MSG_WATCH, ID_WATCH, seq, 0);
    }
  } else if (id == ID_SNAPSHOT) {
    int err = hsp_reg_replica_receive(f->replica, msg, len);
    if (err == HSP_REG_EREPLAY && f->resyncing) {
      err = hsp_reg_replica_reset(f->replica);
      if (!err) err = hsp_reg_replica_receive(f->replica, msg, len);
    }
    f->resyncing = false;
    if (err < 0 && err != HSP_REG_EREPLAY) sync_failed(f, err);
    /* EREPLAY: older than what we hold; WATCH tells whether our history still stands */
    request(f, HSP_REG_MSG_WATCH, ID_WATCH, hsp_reg_replica_seq(f->replica), 0);
  } else if (id == ID_WATCH) {
    int err = hsp_reg_replica_receive(f->replica, msg, len);
    if (err == HSP_REG_ECHAIN) resync(f);
    else if (err < 0) sync_failed(f, err);
    else f->last_sync_err = 0;
  }
  if (f->cbs.on_change) f->cbs.on_change(f->ud);
}

static void on_up(void *ud) {
  hsp_agent_follow_t *f = ud;
  bool again = f->down_reported;
  f->down_reported = false;
  if (f->cbs.on_up) f->cbs.on_up(f->ud, again); /* was_up() still tells the first time */
  f->was_up = true;
  uint64_t seq = hsp_reg_replica_seq(f->replica);
  if (seq == 0) request(f, HSP_REG_MSG_SNAPSHOT, ID_SNAPSHOT, 0, 0);
  else request(f, HSP_REG_MSG_SYNC, ID_PROBE, seq, 1);
}

static void on_down(void *ud, int err) {
  hsp_agent_follow_t *f = ud;
  if (f->stopping) return;
  f->down_reported = true;
  if (f->cbs.on_down) f->cbs.on_down(f->ud, f->was_up, err);
}

int hsp_agent_follow_start(hsp_agent_follow_t **out, hsp_dht_io_t *io, const uint8_t *registry,
                           const char *replica_path, const hsp_agent_follow_cbs_t *cbs, void *ud) {
  *out = NULL;
  hsp_agent_follow_t *f = calloc(1, sizeof *f);
  if (!f) return HSP_REG_ENOMEM;
  f->cbs = *cbs;
  f->ud = ud;
  int err = hsp_reg_replica_open(&f->replica, replica_path, registry);
  if (err) {
    free(f);
    return err;
  }
  hsp_reg_session_cbs_t scbs = {on_up, on_down, on_message};
  err = hsp_reg_session_start(&f->session, io, registry, &scbs, f);
  if (err) {
    hsp_reg_replica_close(f->replica);
    free(f);
    return err;
  }
  *out = f;
  return 0;
}

hsp_reg_replica_t *hsp_agent_follow_replica(const hsp_agent_follow_t *f) { return f->replica; }

bool hsp_agent_follow_was_up(const hsp_agent_follow_t *f) { return f->was_up; }

static void session_closed(void *ctx) {
  hsp_agent_follow_t *f = ctx;
  hsp_reg_replica_close(f->replica);
  void (*cb)(void *) = f->stop_cb;
  void *cctx = f->stop_ctx;
  free(f);
  if (cb) cb(cctx);
}

void hsp_agent_follow_stop(hsp_agent_follow_t *f, void (*cb)(void *ctx), void *ctx) {
  if (f->stopping) return;
  f->stopping = true;
  f->stop_cb = cb;
  f->stop_ctx = ctx;
  hsp_reg_session_close(f->session, session_closed, f);
}
