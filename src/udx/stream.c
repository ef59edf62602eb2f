/*
 * The stream state machine, sans I/O: packets in through hsp_udx__stream_recv, datagrams out
 * through s->io->send, time from s->io->now (microseconds) and one deadline out through
 * s->io->arm. Behaviour follows libudx as documented in docs/protocol/udx.md §3:
 * packet-counted seqs, one ACK (with SACK blocks) per DATA/END received, RACK-TLP loss
 * detection plus an RTO with libudx's bounds (1 s floor, 30 s cap, 6 expiries -> ETIMEDOUT).
 *
 * Re-entrancy: user callbacks (read, message, write completion) may destroy the stream, so
 * every path re-checks s->closed after calling one. Buffers are only released by
 * hsp_udx__stream_release, after the I/O layer has finished with the stream.
 */
#include <stdlib.h>
#include <string.h>

#include "bbr.h"
#include "internal.h"

#define POOL_MAX 8192
#define US_PER_MS 1000ull
#define MIN_RTT_WINDOW_US (300ull * 1000 * 1000)

/* ---------- packet pool ---------- */

static hsp_udx_pkt_t *pkt_alloc(hsp_udx_t *u) {
  hsp_udx_pkt_t *p = u->free_pkts;
  if (p) {
    u->free_pkts = p->next;
    u->free_count--;
  } else {
    p = malloc(sizeof(*p));
    if (!p) return NULL;
  }
  p->next = p->prev = NULL;
  p->flags = 0;
  p->rto_count = 0;
  p->off = 0;
  p->type = 0;
  return p;
}

static void pkt_free(hsp_udx_t *u, hsp_udx_pkt_t *p) {
  if (u->free_count >= POOL_MAX) {
    free(p);
    return;
  }
  p->next = u->free_pkts;
  u->free_pkts = p;
  u->free_count++;
}

void hsp_udx__pool_free(hsp_udx_t *u) {
  while (u->free_pkts) {
    hsp_udx_pkt_t *p = u->free_pkts;
    u->free_pkts = p->next;
    free(p);
  }
  u->free_count = 0;
}

/* ---------- seq -> packet ring ---------- */

static hsp_udx_pkt_t *ring_get(const hsp_udx_ring_t *r, uint32_t seq) {
  if (!r->slots) return NULL;
  hsp_udx_pkt_t *p = r->slots[seq & r->mask];
  return p && p->seq == seq ? p : NULL;
}

static void ring_del(hsp_udx_ring_t *r, uint32_t seq) {
  if (r->slots && r->slots[seq & r->mask] && r->slots[seq & r->mask]->seq == seq) {
    r->slots[seq & r->mask] = NULL;
  }
}

/* span = distance from the ring's base (oldest live seq) to seq, plus one. Every live
 * entry lies within [base, base + capacity), so growing never makes two collide. */
static int ring_put(hsp_udx_ring_t *r, hsp_udx_pkt_t *p, uint32_t span) {
  uint32_t cap = r->slots ? r->mask + 1 : 0;
  if (span > cap) {
    uint32_t ncap = cap ? cap : 64;
    while (ncap < span) ncap *= 2;
    hsp_udx_pkt_t **ns = calloc(ncap, sizeof(*ns));
    if (!ns) return HSP_UDX_ENOMEM;
    for (uint32_t i = 0; i < cap; i++) {
      if (r->slots[i]) ns[r->slots[i]->seq & (ncap - 1)] = r->slots[i];
    }
    free(r->slots);
    r->slots = ns;
    r->mask = ncap - 1;
  }
  r->slots[p->seq & r->mask] = p;
  return 0;
}

/* ---------- intrusive lists (a packet is on at most one) ---------- */

static void list_append(hsp_udx_pkt_t **head, hsp_udx_pkt_t **tail, hsp_udx_pkt_t *p) {
  p->next = NULL;
  p->prev = *tail;
  if (*tail) (*tail)->next = p;
  else *head = p;
  *tail = p;
}

static void list_remove(hsp_udx_pkt_t **head, hsp_udx_pkt_t **tail, hsp_udx_pkt_t *p) {
  if (p->prev) p->prev->next = p->next;
  else *head = p->next;
  if (p->next) p->next->prev = p->prev;
  else *tail = p->prev;
  p->next = p->prev = NULL;
}

static void sent_remove(hsp_udx_stream_t *s, hsp_udx_pkt_t *p) {
  if (p->flags & HSP_UDX_PKT_IN_SENT) {
    list_remove(&s->sent_head, &s->sent_tail, p);
    p->flags &= (uint8_t)~HSP_UDX_PKT_IN_SENT;
    s->inflight--;
  } else if (p->flags & HSP_UDX_PKT_IN_RQ) {
    list_remove(&s->rq_head, &s->rq_tail, p);
    p->flags &= (uint8_t)~HSP_UDX_PKT_IN_RQ;
  }
}

static void rq_push_front(hsp_udx_stream_t *s, hsp_udx_pkt_t *p) {
  p->prev = NULL;
  p->next = s->rq_head;
  if (s->rq_head) s->rq_head->prev = p;
  else s->rq_tail = p;
  s->rq_head = p;
  p->flags |= HSP_UDX_PKT_IN_RQ;
}

/* ---------- helpers ---------- */

static inline int32_t sdiff(uint32_t a, uint32_t b) { return hsp_udx_seq_diff(a, b); }

static uint64_t now_us(hsp_udx_stream_t *s) { return s->io->now(s); }

static uint32_t recv_rwnd(const hsp_udx_stream_t *s) {
  return s->ready_bytes >= s->rwnd_max ? 0 : s->rwnd_max - (uint32_t)s->ready_bytes;
}

/* Whether `len` more payload bytes may be held (in order but unread, or out of order). A
 * sender that honours our window stays below the limit; one that ignores it gets its
 * excess dropped instead of growing our memory. The slack is half a window: udx-native
 * gates on packets in flight rather than bytes and was measured overshooting a closing
 * window by ~0.6 MiB of 4. */
static int recv_room(const hsp_udx_stream_t *s, size_t len) {
  return s->ready_bytes + s->ooo_bytes + len <= (size_t)s->rwnd_max + s->rwnd_max / 2;
}

static void write_header(hsp_udx_stream_t *s, uint8_t *buf, uint8_t type, uint32_t seq) {
  hsp_udx_header_t h = {.type = type, .data_offset = 0, .id = s->remote_id,
                        .rwnd = recv_rwnd(s), .seq = seq, .ack = s->ack};
  hsp_udx_header_encode(buf, &h);
}

static int io_send(hsp_udx_stream_t *s, const uint8_t *buf, size_t len, uint64_t now) {
  int r = s->io->send(s, buf, len);
  if (r == 0) {
    s->stat_packets_sent++;
    s->last_send = now;
  }
  return r;
}

static int has_new_data(const hsp_udx_stream_t *s) { return s->write_cursor != NULL; }

static uint32_t send_window(const hsp_udx_stream_t *s) {
  uint32_t rw = 0;
  if (s->send_rwnd > 0) {
    rw = s->send_rwnd / s->max_payload;
    if (rw == 0) rw = 1;
  }
  return rw < s->cwnd ? rw : s->cwnd;
}

static uint64_t reo_wnd(const hsp_udx_stream_t *s) {
  if (!s->reordering_seen && (s->ca_state != HSP_UDX_CA_OPEN || s->sacked >= 3)) return 0;
  uint64_t w = s->min_rtt / 4;
  return w < s->srtt ? w : s->srtt;
}

static void update_timer(hsp_udx_stream_t *s) {
  if (s->closed) {
    s->io->arm(s, 0);
    return;
  }
  if (s->keepalive_ms && s->connected && s->remote_acked == s->seq) {
    s->keepalive_at = s->last_send + s->keepalive_ms * US_PER_MS;
  } else {
    s->keepalive_at = 0;
  }
  uint64_t d = 0;
  uint64_t c[6] = {s->rto_at, s->reo_at, s->tlp_at, s->zwp_at, s->keepalive_at, s->bbr.pace_at};
  for (int i = 0; i < 6; i++) {
    if (c[i] && (!d || c[i] < d)) d = c[i];
  }
  s->io->arm(s, d);
}

/* ---------- control packets ---------- */

static void send_ctrl(hsp_udx_stream_t *s, uint8_t type, uint64_t now) {
  uint8_t buf[HSP_UDX_HEADER_SIZE];
  write_header(s, buf, type, s->seq);
  io_send(s, buf, sizeof(buf), now);
}

static void send_ack(hsp_udx_stream_t *s, uint64_t now) {
  if (!s->connected) {
    s->ack_needed = 1;
    return;
  }
  s->ack_needed = 0;
  s->ack_deferred = 0;
  uint8_t buf[HSP_UDX_HEADER_SIZE + 8 * HSP_UDX_MAX_SACKS];
  hsp_udx_sack_block_t blocks[HSP_UDX_MAX_SACKS];
  size_t n = 0;
  if (s->ooo_count) {
    /* Ascending runs of buffered out-of-order packets; stop once all were seen. */
    uint32_t found = 0, seq = s->ack + 1;
    int in_block = 0;
    for (uint32_t d = 1; d < HSP_UDX_MAX_OOO_DISTANCE && n < HSP_UDX_MAX_SACKS; d++, seq++) {
      if (ring_get(&s->incoming, seq)) {
        found++;
        if (!in_block) {
          blocks[n].start = seq;
          in_block = 1;
        }
      } else if (in_block) {
        blocks[n++].end = seq;
        in_block = 0;
        if (found >= s->ooo_count) break;
      }
    }
    if (in_block) blocks[n++].end = seq;
  }
  write_header(s, buf, n ? HSP_UDX_TYPE_SACK : 0, s->seq);
  size_t len = HSP_UDX_HEADER_SIZE + hsp_udx_sack_encode(buf + HSP_UDX_HEADER_SIZE, blocks, n);
  io_send(s, buf, len, now);
}

/* ---------- RTT ---------- */

static void rtt_sample(hsp_udx_stream_t *s, uint64_t r, uint64_t now) {
  const uint64_t rtt_max = (uint64_t)HSP_UDX_RTO_MAX_MS * US_PER_MS;
  if (!s->srtt) {
    if (r > rtt_max) r = rtt_max;
    if (r == 0) r = 1;
    s->srtt = r;
    s->rttvar = r / 2;
  } else {
    /* A huge sample after a suspend would inflate the RTO for minutes: clamp outliers. */
    uint64_t lim = s->srtt + 5 * s->rttvar;
    if (r > 5000 * US_PER_MS && r > lim) r = lim < rtt_max ? lim : rtt_max;
    uint64_t dev = s->srtt > r ? s->srtt - r : r - s->srtt;
    s->rttvar = (3 * s->rttvar + dev) / 4;
    s->srtt = (7 * s->srtt + r) / 8;
    if (!s->srtt) s->srtt = 1;
  }
  uint64_t rto = s->srtt + 4 * s->rttvar;
  if (rto < HSP_UDX_RTO_MIN_MS * US_PER_MS) rto = HSP_UDX_RTO_MIN_MS * US_PER_MS;
  if (rto > rtt_max) rto = rtt_max;
  s->rto = rto;
  if (!s->min_rtt || r <= s->min_rtt || now - s->min_rtt_ts > MIN_RTT_WINDOW_US) {
    s->min_rtt = r ? r : 1;
    s->min_rtt_ts = now;
  }
}

/* ---------- path MTU ---------- */

enum { MTU_BASE = 0, MTU_SEARCH = 1, MTU_DONE = 2 };

void hsp_udx__stream_mtu_reset(hsp_udx_stream_t *s, uint32_t overhead, uint32_t search_max) {
  s->mtu = HSP_UDX_MTU_BASE;
  s->mtu_overhead = overhead;
  s->max_payload = HSP_UDX_MTU_BASE - overhead;
  s->mtu_probe_size = search_max > HSP_UDX_MTU_BASE ? search_max : 0; /* upper bound */
  s->mtu_state = s->mtu_probe_size ? MTU_BASE : MTU_DONE;
  s->mtu_probe_outstanding = 0;
  s->mtu_probe_failures = 0;
}

static uint32_t mtu_next_probe(const hsp_udx_stream_t *s) {
  uint32_t next = s->mtu + HSP_UDX_MTU_STEP;
  return next > s->mtu_probe_size ? s->mtu_probe_size : next;
}

/* A probe is an ordinary DATA packet padded (data_offset) up to the probe size. */
static void mtu_probeify(hsp_udx_stream_t *s, hsp_udx_pkt_t *p) {
  if (s->mtu_state != MTU_SEARCH || s->mtu_probe_outstanding || s->remote_change_pending ||
      s->ca_state != HSP_UDX_CA_OPEN || !(p->type & HSP_UDX_TYPE_DATA)) {
    return;
  }
  size_t payload = p->len - HSP_UDX_HEADER_SIZE;
  uint32_t target = mtu_next_probe(s);
  if (payload + s->mtu_overhead >= target) return;
  size_t pad = target - s->mtu_overhead - payload;
  if (pad > 255 || p->len + pad > HSP_UDX_MAX_DATAGRAM) return;
  memmove(p->buf + HSP_UDX_HEADER_SIZE + pad, p->buf + HSP_UDX_HEADER_SIZE, payload);
  memset(p->buf + HSP_UDX_HEADER_SIZE, 0, pad);
  p->buf[3] = (uint8_t)pad;
  p->len = (uint16_t)(p->len + pad);
  p->flags |= HSP_UDX_PKT_PROBE;
  s->mtu_probe_outstanding = 1;
}

/* A lost probe goes out again unpadded; after a few failures the search stops. */
static void mtu_unprobeify(hsp_udx_stream_t *s, hsp_udx_pkt_t *p) {
  if (!(p->flags & HSP_UDX_PKT_PROBE)) return;
  size_t pad = p->buf[3];
  size_t payload = p->len - HSP_UDX_HEADER_SIZE - pad;
  memmove(p->buf + HSP_UDX_HEADER_SIZE, p->buf + HSP_UDX_HEADER_SIZE + pad, payload);
  p->buf[3] = 0;
  p->len = (uint16_t)(p->len - pad);
  p->flags &= (uint8_t)~HSP_UDX_PKT_PROBE;
  s->mtu_probe_outstanding = 0;
  if (++s->mtu_probe_failures >= HSP_UDX_MTU_MAX_PROBES) s->mtu_state = MTU_DONE;
}

static void mtu_on_delivered(hsp_udx_stream_t *s, hsp_udx_pkt_t *p) {
  if (s->mtu_state == MTU_BASE) s->mtu_state = MTU_SEARCH;
  if (!(p->flags & HSP_UDX_PKT_PROBE)) return;
  p->flags &= (uint8_t)~HSP_UDX_PKT_PROBE;
  s->mtu_probe_outstanding = 0;
  uint32_t size = p->len - HSP_UDX_HEADER_SIZE + s->mtu_overhead; /* IP packet size */
  if (size > s->mtu) {
    s->mtu = size;
    s->max_payload = s->mtu - s->mtu_overhead;
    s->mtu_probe_failures = 0;
  }
  if (s->mtu >= s->mtu_probe_size) s->mtu_state = MTU_DONE;
}

/* ---------- sending ---------- */

static void arm_tlp(hsp_udx_stream_t *s, uint64_t now) {
  s->tlp_at = 0;
  if (s->remote_acked == s->seq || s->tlp_outstanding || s->ca_state != HSP_UDX_CA_OPEN ||
      s->sacked) {
    return;
  }
  uint64_t pto = 1000 * US_PER_MS;
  if (s->srtt) {
    pto = 2 * s->srtt;
    if (pto < 2 * US_PER_MS) pto = 2 * US_PER_MS;
    if (s->seq - s->remote_acked == 1) pto += 2 * US_PER_MS;
  }
  s->tlp_at = now + pto;
  if (s->rto_at && s->tlp_at >= s->rto_at) s->tlp_at = 0;
}

/* Sends p (new or again) and puts it at the tail of the in-flight list. */
static int send_pkt(hsp_udx_stream_t *s, hsp_udx_pkt_t *p, uint64_t now) {
  hsp_udx_write_u32(p->buf + 4, s->remote_id);
  hsp_udx_write_u32(p->buf + 8, recv_rwnd(s));
  hsp_udx_write_u32(p->buf + 16, s->ack);
  int r = io_send(s, p->buf, p->len, now);
  if (r < 0) return r;
  hsp_udx__pacer_consume(s, p->len);
  hsp_udx__bbr_on_send(s, p, now);
  if (p->time_sent) {
    p->flags |= HSP_UDX_PKT_RETRANSMIT;
    s->stat_retransmits++;
  }
  p->time_sent = now ? now : 1;
  p->flags |= HSP_UDX_PKT_IN_SENT;
  list_append(&s->sent_head, &s->sent_tail, p);
  s->inflight++;
  if (!s->rto_at) s->rto_at = now + s->rto;
  return 0;
}

/* Builds the next DATA/END packet from the write queue. */
static hsp_udx_pkt_t *packetise(hsp_udx_stream_t *s) {
  hsp_udx_pkt_t *p = pkt_alloc(s->udx);
  if (!p) return NULL;
  p->seq = s->seq;
  if (ring_put(&s->outgoing, p, s->seq - s->remote_acked + 1) < 0) {
    pkt_free(s->udx, p);
    return NULL;
  }
  uint8_t type = 0;
  size_t n = 0;
  uint8_t *payload = p->buf + HSP_UDX_HEADER_SIZE;
  hsp_udx_write_t *w;
  /* Zero-byte remainders (an end marker) still attach to a full packet. */
  while ((w = s->write_cursor) && (n < s->max_payload || w->sent == w->len)) {
    size_t take = w->len - w->sent;
    if (take > s->max_payload - n) take = s->max_payload - n;
    if (take) memcpy(payload + n, w->buf + w->sent, take);
    n += take;
    w->sent += take;
    if (w->sent < w->len) break;
    w->packetised = 1;
    w->end_seq = s->seq;
    s->write_cursor = w->next;
    if (w->is_end) {
      type |= HSP_UDX_TYPE_END;
      s->end_sent = 1;
      s->end_seq = s->seq;
      s->write_cursor = NULL;
      break;
    }
  }
  if (n) type |= HSP_UDX_TYPE_DATA;
  p->type = type;
  p->len = (uint16_t)(HSP_UDX_HEADER_SIZE + n);
  p->time_sent = 0;
  write_header(s, p->buf, type, s->seq);
  s->seq++;
  mtu_probeify(s, p);
  return p;
}

static void complete_writes(hsp_udx_stream_t *s) {
  hsp_udx_write_t *w;
  while (!s->closed && (w = s->writes_head) && w->packetised &&
         sdiff(w->end_seq, s->remote_acked) < 0) {
    s->writes_head = w->next;
    if (!s->writes_head) s->writes_tail = NULL;
    s->write_queued_bytes -= w->len;
    w->next = NULL;
    if (w->cb) w->cb(w, 0);
  }
}

static void deliver_eof_if_ready(hsp_udx_stream_t *s) {
  if (s->closed || !s->eof_pending || !s->reading || s->ready_head) return;
  s->eof_pending = 0;
  s->remote_ended = 1;
  if (s->read_cb) s->read_cb(s, NULL, HSP_UDX_EOF);
}

static void maybe_close(hsp_udx_stream_t *s) {
  if (!s->closed && s->ended && s->remote_ended) hsp_udx__stream_close(s, 0);
}

/* Delivers buffered in-order data to a reading application. */
static void drain_ready(hsp_udx_stream_t *s, uint64_t now) {
  uint32_t before = recv_rwnd(s);
  while (!s->closed && s->reading && s->ready_head) {
    hsp_udx_pkt_t *p = s->ready_head;
    s->ready_head = p->next;
    if (!s->ready_head) s->ready_tail = NULL;
    s->ready_bytes -= p->len;
    if (s->read_cb) s->read_cb(s, p->buf + p->off, p->len);
    pkt_free(s->udx, p);
  }
  if (s->closed) return;
  /* Tell a sender stalled on our window that it reopened, instead of waiting for its probe. */
  if (before < s->rwnd_max / 2 && recv_rwnd(s) >= s->rwnd_max / 2) send_ack(s, now);
  deliver_eof_if_ready(s);
  maybe_close(s);
}

void hsp_udx__stream_flush(hsp_udx_stream_t *s) {
  if (s->closed) return;
  uint64_t now = now_us(s);
  drain_ready(s, now);
  complete_writes(s);
  if (s->closed) return;
  if (!s->connected) {
    update_timer(s);
    return;
  }
  if (s->ack_needed) send_ack(s, now);
  s->bbr.pace_at = 0;
  while (s->rq_head && s->inflight < s->cwnd && hsp_udx__pacer_ready(s, now)) {
    hsp_udx_pkt_t *p = s->rq_head;
    list_remove(&s->rq_head, &s->rq_tail, p);
    p->flags &= (uint8_t)~HSP_UDX_PKT_IN_RQ;
    if (send_pkt(s, p, now) < 0) {
      rq_push_front(s, p);
      update_timer(s);
      return;
    }
  }
  int sent_new = 0;
  while (has_new_data(s) && s->inflight < send_window(s) && !s->rq_head &&
         hsp_udx__pacer_ready(s, now)) {
    hsp_udx_pkt_t *p = packetise(s);
    if (!p) break;
    if (send_pkt(s, p, now) < 0) {
      /* Not on the wire yet: queue it to go first once the socket drains. */
      list_append(&s->rq_head, &s->rq_tail, p);
      p->flags |= HSP_UDX_PKT_IN_RQ;
      break;
    }
    sent_new = 1;
  }
  if (sent_new) arm_tlp(s, now);
  if (!has_new_data(s) && !s->rq_head && s->inflight < s->cwnd) hsp_udx__bbr_app_limited(s);
  if (s->send_rwnd == 0 && has_new_data(s) && !s->zwp_at) {
    /* Zero-window probe: HEARTBEAT now, then after rto, then every 2 rto. */
    send_ctrl(s, HSP_UDX_TYPE_HEARTBEAT, now);
    s->zwp_at = now + s->rto;
  }
  update_timer(s);
}

/* ---------- loss detection ---------- */

static void mark_lost(hsp_udx_stream_t *s, hsp_udx_pkt_t *p) {
  /* A lost MTU probe says the packet was too big, not that the path is congested. */
  int probe = (p->flags & HSP_UDX_PKT_PROBE) != 0;
  sent_remove(s, p);
  mtu_unprobeify(s, p);
  list_append(&s->rq_head, &s->rq_tail, p);
  p->flags |= HSP_UDX_PKT_IN_RQ;
  if (s->ca_state == HSP_UDX_CA_OPEN && !probe) {
    s->high_seq = s->seq;
    s->stat_fast_recoveries++;
    hsp_udx__bbr_on_recovery(s);
    s->ca_state = HSP_UDX_CA_RECOVERY;
  }
  if (!probe) hsp_udx__bbr_on_lost(s);
}

/* RACK (RFC 8985): a packet sent before the most recently delivered one is lost once it has
 * been outstanding for rack_rtt + reo_wnd; otherwise wake up when it would be. */
static void rack_detect_loss(hsp_udx_stream_t *s, uint64_t now) {
  s->reo_at = 0;
  if (!s->rack_valid) return;
  uint64_t reo = reo_wnd(s);
  hsp_udx_pkt_t *p = s->sent_head;
  while (p) {
    hsp_udx_pkt_t *next = p->next;
    if (p->time_sent > s->rack_xmit_ts ||
        (p->time_sent == s->rack_xmit_ts && sdiff(p->seq, s->rack_end_seq) >= 0)) {
      break;
    }
    uint64_t deadline = p->time_sent + s->rack_rtt + reo;
    if (deadline <= now) {
      mark_lost(s, p);
    } else {
      s->reo_at = deadline;
      break;
    }
    p = next;
  }
}

static void on_delivered(hsp_udx_stream_t *s, hsp_udx_pkt_t *p, uint64_t now) {
  sent_remove(s, p);
  p->flags |= HSP_UDX_PKT_SACKED;
  if (!p->time_sent) return; /* queued but never sent (socket was full) */
  mtu_on_delivered(s, p);
  uint64_t rtt = now >= p->time_sent ? now - p->time_sent : 0;
  int retrans = (p->flags & HSP_UDX_PKT_RETRANSMIT) != 0;
  hsp_udx__bbr_on_delivered(s, p, retrans ? UINT64_MAX : rtt);
  if (!retrans) {
    rtt_sample(s, rtt, now);
    s->tlp_outstanding = 0;
    if (s->rack_valid && sdiff(p->seq, s->highest_delivered) < 0) s->reordering_seen = 1;
  } else if (rtt < s->min_rtt) {
    return; /* probably acks the original transmission: not a RACK sample */
  }
  if (!s->rack_valid || sdiff(p->seq, s->highest_delivered) > 0) s->highest_delivered = p->seq;
  if (!s->rack_valid || p->time_sent > s->rack_xmit_ts ||
      (p->time_sent == s->rack_xmit_ts && sdiff(p->seq, s->rack_end_seq) > 0)) {
    s->rack_xmit_ts = p->time_sent;
    s->rack_end_seq = p->seq;
    s->rack_rtt = rtt;
    s->rack_valid = 1;
  }
}

static void process_ack(hsp_udx_stream_t *s, const hsp_udx_header_t *h, const uint8_t *payload,
                        size_t len, uint64_t now) {
  /* Offsets from snd.una, so a signed compare cannot be fooled at a distance of 2^31. */
  uint32_t newly = h->ack - s->remote_acked;
  if (newly > s->seq - s->remote_acked) {
    /* An old ack (below snd.una) still carries a window; one above snd.nxt is bogus. */
    if (sdiff(h->ack, s->remote_acked) >= 0) return;
    newly = 0;
  }
  /* The TCP SND.WL1/WL2 rule, plus a plausibility bound on seq so one forged packet with
   * a far-future seq cannot freeze the window forever. */
  int32_t ahead = sdiff(h->seq, s->ack);
  if (sdiff(h->ack, s->remote_acked) >= 0 && ahead >= 0 &&
      ahead <= (int32_t)HSP_UDX_MAX_OOO_DISTANCE &&
      (!s->wl_valid || sdiff(s->wl1, h->seq) < 0 ||
       (s->wl1 == h->seq && sdiff(s->wl2, h->ack) <= 0))) {
    s->send_rwnd = h->rwnd;
    s->wl1 = h->seq;
    s->wl2 = h->ack;
    s->wl_valid = 1;
    if (s->send_rwnd) s->zwp_at = 0;
  }

  uint32_t delivered = 0;
  int advanced = 0;
  hsp_udx__bbr_ack_begin(s);
  for (; newly > 0; newly--) {
    hsp_udx_pkt_t *p = ring_get(&s->outgoing, s->remote_acked);
    if (p) {
      if (p->flags & HSP_UDX_PKT_SACKED) {
        s->sacked--;
      } else {
        on_delivered(s, p, now);
        delivered++;
      }
      ring_del(&s->outgoing, p->seq);
      pkt_free(s->udx, p);
    }
    s->remote_acked++;
    advanced = 1;
  }

  if ((h->type & HSP_UDX_TYPE_SACK) && len >= 8) {
    hsp_udx_sack_block_t blocks[HSP_UDX_MAX_SACKS];
    size_t n = hsp_udx_sack_decode(payload, len, blocks, HSP_UDX_MAX_SACKS);
    for (size_t i = 0; i < n; i++) {
      uint32_t st = blocks[i].start, en = blocks[i].end;
      /* Valid only inside [snd.una, snd.nxt]; others are ignored as libudx does. */
      /* Offsets from snd.una, so wrap-around cannot make a huge block look valid. */
      uint32_t o_st = st - s->remote_acked, o_en = en - s->remote_acked;
      if (!(o_st < o_en && o_en <= s->seq - s->remote_acked)) continue;
      for (uint32_t q = st; q != en; q++) {
        hsp_udx_pkt_t *p = ring_get(&s->outgoing, q);
        if (p && !(p->flags & HSP_UDX_PKT_SACKED)) {
          on_delivered(s, p, now);
          s->sacked++;
          delivered++;
        }
      }
    }
  }

  if (delivered) rack_detect_loss(s, now);
  if (s->ca_state != HSP_UDX_CA_OPEN && sdiff(s->remote_acked, s->high_seq) >= 0) {
    s->ca_state = HSP_UDX_CA_OPEN;
  }
  if (delivered) hsp_udx__bbr_ack_end(s, now);

  if (s->remote_acked == s->seq) {
    s->rto_at = 0;
    s->tlp_at = 0;
    s->reo_at = 0;
  } else if (advanced) {
    s->rto_at = now + s->rto;
  }
  if (delivered) arm_tlp(s, now);

  if (s->end_sent && !s->ended && sdiff(s->end_seq, s->remote_acked) < 0) s->ended = 1;
  if (s->remote_change_pending && sdiff(h->ack, s->remote_change_seq) >= 0) {
    s->remote_change_pending = 0;
    if (s->remote_changed_cb) s->remote_changed_cb(s);
    if (s->closed) return;
  }
  complete_writes(s);
}

/* ---------- receiving ---------- */

static void deliver_data(hsp_udx_stream_t *s, hsp_udx_pkt_t *held, const uint8_t *buf,
                         size_t len) {
  if (len == 0) {
    if (held) pkt_free(s->udx, held);
    return;
  }
  if (s->reading && !s->ready_head) {
    if (s->read_cb) s->read_cb(s, buf, (ssize_t)len);
    if (held) pkt_free(s->udx, held);
    return;
  }
  hsp_udx_pkt_t *p = held; /* callers hand in a buffer whenever data may need holding */
  if (!p) return;
  p->next = NULL;
  if (s->ready_tail) s->ready_tail->next = p;
  else s->ready_head = p;
  s->ready_tail = p;
  s->ready_bytes += len;
}

static void note_end(hsp_udx_stream_t *s, uint32_t seq) {
  if (!s->remote_end_known) {
    s->remote_end_known = 1;
    s->remote_end_seq = seq;
  }
}

void hsp_udx__stream_recv(hsp_udx_stream_t *s, const hsp_udx_header_t *h, const uint8_t *payload,
                          size_t len) {
  if (s->closed) return;
  uint64_t now = now_us(s);
  s->stat_packets_received++;
  if (h->type & HSP_UDX_TYPE_HEARTBEAT) {
    send_ack(s, now);
    update_timer(s);
    return;
  }
  int is_data = (h->type & (HSP_UDX_TYPE_DATA | HSP_UDX_TYPE_END)) != 0;
  int32_t dist = sdiff(h->seq, s->ack);
  if (is_data && dist >= 0 &&
      !(s->remote_end_known && sdiff(h->seq, s->remote_end_seq) > 0)) {
    const uint8_t *data = (h->type & HSP_UDX_TYPE_DATA) ? payload : NULL;
    size_t dlen = data ? len : 0;
    hsp_udx_pkt_t *held = NULL;
    if (dist == 0 && dlen && !(s->reading && !s->ready_head) && recv_room(s, dlen)) {
      /* It must be buffered: allocate before accepting, so out of memory is just a drop. */
      held = pkt_alloc(s->udx);
      if (held) {
        memcpy(held->buf, data, dlen);
        held->len = (uint16_t)dlen;
      }
    }
    if (dist == 0 && (held || !dlen || (s->reading && !s->ready_head))) {
      if (h->type & HSP_UDX_TYPE_END) note_end(s, h->seq);
      s->ack++;
      deliver_data(s, held, data, dlen);
      if (s->closed) return;
    } else if (dist == 0) {
      /* dropped (no memory, or beyond the window we advertised); the sender retransmits */
    } else if ((uint32_t)dist < HSP_UDX_MAX_OOO_DISTANCE && !ring_get(&s->incoming, h->seq) &&
               recv_room(s, dlen)) {
      hsp_udx_pkt_t *p = pkt_alloc(s->udx);
      if (p) {
        p->seq = h->seq;
        p->type = h->type;
        p->len = (uint16_t)dlen;
        if (dlen) memcpy(p->buf, data, dlen);
        if (ring_put(&s->incoming, p, (uint32_t)dist + 1) < 0) {
          pkt_free(s->udx, p);
        } else {
          s->ooo_count++;
          s->ooo_bytes += dlen;
          if (h->type & HSP_UDX_TYPE_END) note_end(s, h->seq);
        }
      }
    }
  }
  if ((h->type & HSP_UDX_TYPE_DESTROY) && dist >= 0) {
    hsp_udx__stream_close(s, HSP_UDX_ECONNRESET);
    return;
  }
  if ((h->type & HSP_UDX_TYPE_MESSAGE) && s->message_cb) {
    s->message_cb(s, payload, len);
    if (s->closed) return;
  }
  hsp_udx_pkt_t *p;
  while ((p = ring_get(&s->incoming, s->ack))) {
    ring_del(&s->incoming, p->seq);
    s->ooo_count--;
    s->ooo_bytes -= p->len;
    s->ack++;
    deliver_data(s, p, p->buf, p->len);
    if (s->closed) return;
  }
  if (s->remote_end_known && !s->remote_ended && sdiff(s->ack, s->remote_end_seq) > 0) {
    s->eof_pending = 1;
  }
  process_ack(s, h, payload, len, now);
  if (s->closed) return;
  /* Every DATA/END gets an ACK, duplicates included: that is how lost ACKs heal. The I/O
   * layer may coalesce the ACKs of one receive batch into one (they are cumulative). */
  if (is_data) {
    /* Coalesce only while everything arrives in order: around losses the sender needs
     * every SACK (as with TCP's immediate ACK for out-of-order data). */
    if (s->io->defer_ack && s->connected && dist == 0 && s->ooo_count == 0) {
      if (!s->ack_deferred) {
        s->ack_deferred = 1;
        s->io->defer_ack(s);
      }
    } else {
      send_ack(s, now);
    }
  }
  deliver_eof_if_ready(s);
  if (s->closed) return;
  maybe_close(s);
  if (s->closed) return;
  hsp_udx__stream_flush(s);
}

/* ---------- timers ---------- */

static void on_rto(hsp_udx_stream_t *s, uint64_t now) {
  s->rto_at = 0;
  if (s->remote_acked == s->seq) return;
  hsp_udx_pkt_t *first = ring_get(&s->outgoing, s->remote_acked);
  if (first) {
    if (first->rto_count >= HSP_UDX_MAX_RTO_TIMEOUTS) {
      hsp_udx__stream_close(s, HSP_UDX_ETIMEDOUT);
      return;
    }
    first->rto_count++;
  }
  s->stat_rto_count++;
  s->high_seq = s->seq;
  hsp_udx__bbr_on_rto(s);
  s->ca_state = HSP_UDX_CA_LOSS;
  /* Everything in flight is presumed lost; first goes first. */
  hsp_udx_pkt_t *p;
  while ((p = s->sent_head)) {
    sent_remove(s, p);
    mtu_unprobeify(s, p);
    list_append(&s->rq_head, &s->rq_tail, p);
    p->flags |= HSP_UDX_PKT_IN_RQ;
  }
  if (first && (first->flags & HSP_UDX_PKT_IN_RQ) && s->rq_head != first) {
    list_remove(&s->rq_head, &s->rq_tail, first);
    rq_push_front(s, first);
  }
  s->tlp_at = 0;
  s->reo_at = 0;
  /* libudx re-arms with 2 rto without doubling rto: expiries are evenly spaced. */
  s->rto_at = now + 2 * s->rto;
}

static void on_tlp(hsp_udx_stream_t *s, uint64_t now) {
  s->tlp_at = 0;
  if (s->remote_acked == s->seq || s->tlp_outstanding) return;
  s->tlp_outstanding = 1;
  if (has_new_data(s) && s->send_rwnd > 0) {
    hsp_udx_pkt_t *p = packetise(s);
    if (p && send_pkt(s, p, now) < 0) {
      list_append(&s->rq_head, &s->rq_tail, p);
      p->flags |= HSP_UDX_PKT_IN_RQ;
    }
    return;
  }
  hsp_udx_pkt_t *p = ring_get(&s->outgoing, s->seq - 1);
  if (p && !(p->flags & (HSP_UDX_PKT_SACKED | HSP_UDX_PKT_IN_RQ))) {
    sent_remove(s, p);
    if (send_pkt(s, p, now) < 0) {
      list_append(&s->rq_head, &s->rq_tail, p);
      p->flags |= HSP_UDX_PKT_IN_RQ;
    }
  }
}

void hsp_udx__stream_timeout(hsp_udx_stream_t *s) {
  if (s->closed) return;
  uint64_t now = now_us(s);
  if (s->rto_at && now >= s->rto_at) {
    on_rto(s, now);
    if (s->closed) return;
  }
  if (s->reo_at && now >= s->reo_at) rack_detect_loss(s, now);
  if (s->tlp_at && now >= s->tlp_at) on_tlp(s, now);
  if (s->zwp_at && now >= s->zwp_at) {
    if (s->send_rwnd == 0 && has_new_data(s) && s->connected) {
      send_ctrl(s, HSP_UDX_TYPE_HEARTBEAT, now);
      s->zwp_at = now + 2 * s->rto;
    } else {
      s->zwp_at = 0;
    }
  }
  if (s->keepalive_at && now >= s->keepalive_at) send_ctrl(s, HSP_UDX_TYPE_HEARTBEAT, now);
  hsp_udx__stream_flush(s);
}

/* ---------- lifecycle ---------- */

void hsp_udx__stream_core_init(hsp_udx_stream_t *s, hsp_udx_t *udx, uint32_t local_id,
                               const hsp_udx_io_t *io, void *io_ctx) {
  memset(s, 0, sizeof(*s));
  s->udx = udx;
  s->local_id = local_id;
  s->io = io;
  s->io_ctx = io_ctx;
  s->rwnd_max = HSP_UDX_DEFAULT_RWND;
  s->send_rwnd = HSP_UDX_DEFAULT_RWND;
  s->rto = HSP_UDX_RTO_MIN_MS * US_PER_MS;
  hsp_udx__stream_mtu_reset(s, HSP_UDX_MTU_BASE - HSP_UDX_PAYLOAD_IPV6, 0);
  hsp_udx__bbr_init(s);
}

void hsp_udx__stream_core_connect(hsp_udx_stream_t *s, uint32_t remote_id) {
  s->remote_id = remote_id;
  s->connected = 1;
  s->last_send = now_us(s);
  if (s->io->want_flush) s->io->want_flush(s);
}

void hsp_udx__stream_send_deferred_ack(hsp_udx_stream_t *s) {
  if (s->closed || !s->ack_deferred) return;
  send_ack(s, now_us(s));
  update_timer(s);
}

void hsp_udx__stream_close(hsp_udx_stream_t *s, int status) {
  if (s->closed) return;
  /* The ACK for the peer's last packet (often its END) must not be lost with us. */
  if (s->ack_deferred && status == 0) send_ack(s, now_us(s));
  s->closed = 1;
  s->close_status = status;
  s->rto_at = s->reo_at = s->tlp_at = s->zwp_at = s->keepalive_at = s->bbr.pace_at = 0;
  s->io->arm(s, 0);
  int werr = status < 0 ? status : HSP_UDX_ECANCELED;
  hsp_udx_write_t *w;
  while ((w = s->writes_head)) {
    s->writes_head = w->next;
    w->next = NULL;
    if (w->cb) w->cb(w, werr);
  }
  s->writes_tail = NULL;
  s->write_cursor = NULL;
  s->write_queued_bytes = 0;
  s->io->closed(s);
}

static void free_ring(hsp_udx_stream_t *s, hsp_udx_ring_t *r) {
  if (!r->slots) return;
  for (uint32_t i = 0; i <= r->mask; i++) {
    if (r->slots[i]) pkt_free(s->udx, r->slots[i]);
  }
  free(r->slots);
  r->slots = NULL;
  r->mask = 0;
}

void hsp_udx__stream_release(hsp_udx_stream_t *s) {
  /* Outgoing packets live in the ring (the sent/rq lists only link them). */
  s->sent_head = s->sent_tail = s->rq_head = s->rq_tail = NULL;
  free_ring(s, &s->outgoing);
  free_ring(s, &s->incoming);
  s->ooo_bytes = 0;
  while (s->ready_head) {
    hsp_udx_pkt_t *p = s->ready_head;
    s->ready_head = p->next;
    pkt_free(s->udx, p);
  }
  s->ready_tail = NULL;
  s->ready_bytes = 0;
  s->inflight = 0;
}

/* ---------- public stream API (independent of the I/O layer) ---------- */

static void want_flush(hsp_udx_stream_t *s) {
  if (s->io->want_flush) s->io->want_flush(s);
}

static int queue_write(hsp_udx_write_t *req, hsp_udx_stream_t *s, const uint8_t *buf, size_t len,
                       hsp_udx_write_cb cb, int is_end) {
  if (!req || !s || (len && !buf)) return HSP_UDX_EINVAL;
  if (s->closed) return HSP_UDX_ECLOSED;
  if (s->end_queued) return HSP_UDX_EINVAL;
  void *data = req->data;
  memset(req, 0, sizeof(*req));
  req->data = data;
  req->stream = s;
  req->buf = buf;
  req->len = len;
  req->cb = cb;
  req->is_end = is_end;
  if (is_end) s->end_queued = 1;
  if (s->writes_tail) s->writes_tail->next = req;
  else s->writes_head = req;
  s->writes_tail = req;
  s->write_queued_bytes += len;
  if (len == 0 && !is_end && !s->write_cursor) {
    /* Nothing to send: completes once everything before it is acked. */
    req->packetised = 1;
    req->end_seq = s->seq - 1;
  } else if (!s->write_cursor) {
    s->write_cursor = req;
  }
  want_flush(s);
  return 0;
}

int hsp_udx_stream_write(hsp_udx_write_t *req, hsp_udx_stream_t *s, const uint8_t *buf,
                         size_t len, hsp_udx_write_cb cb) {
  return queue_write(req, s, buf, len, cb, 0);
}

int hsp_udx_stream_write_end(hsp_udx_write_t *req, hsp_udx_stream_t *s, const uint8_t *buf,
                             size_t len, hsp_udx_write_cb cb) {
  return queue_write(req, s, buf, len, cb, 1);
}

size_t hsp_udx_stream_write_queue_size(const hsp_udx_stream_t *s) {
  return s->write_queued_bytes;
}

size_t hsp_udx_stream_read_queue_size(const hsp_udx_stream_t *s) {
  return s->ready_bytes + s->ooo_bytes;
}

int hsp_udx_stream_read_start(hsp_udx_stream_t *s, hsp_udx_stream_read_cb cb) {
  if (!s || !cb) return HSP_UDX_EINVAL;
  if (s->closed) return HSP_UDX_ECLOSED;
  s->read_cb = cb;
  s->reading = 1;
  if (s->ready_head || s->eof_pending) want_flush(s);
  return 0;
}

int hsp_udx_stream_read_stop(hsp_udx_stream_t *s) {
  if (!s) return HSP_UDX_EINVAL;
  s->reading = 0;
  return 0;
}

int hsp_udx_stream_send(hsp_udx_stream_t *s, const uint8_t *buf, size_t len) {
  if (!s || (len && !buf)) return HSP_UDX_EINVAL;
  if (s->closed) return HSP_UDX_ECLOSED;
  if (!s->connected) return HSP_UDX_EINVAL;
  if (len > s->max_payload) return HSP_UDX_EMSGSIZE;
  uint8_t pkt[HSP_UDX_HEADER_SIZE + HSP_UDX_PAYLOAD_IPV4];
  write_header(s, pkt, HSP_UDX_TYPE_MESSAGE, s->seq);
  if (len) memcpy(pkt + HSP_UDX_HEADER_SIZE, buf, len);
  int r = io_send(s, pkt, HSP_UDX_HEADER_SIZE + len, now_us(s));
  update_timer(s);
  return r;
}

int hsp_udx_stream_destroy(hsp_udx_stream_t *s) {
  if (!s) return HSP_UDX_EINVAL;
  if (s->closed) return HSP_UDX_ECLOSED;
  /* A relaying stream disappears silently: the peer's DESTROY is end-to-end. */
  if (s->connected && !s->relay_to) send_ctrl(s, HSP_UDX_TYPE_DESTROY, now_us(s));
  hsp_udx__stream_close(s, 0);
  return 0;
}

int hsp_udx_stream_set_seq(hsp_udx_stream_t *s, uint32_t seq) {
  if (!s || s->seq != s->remote_acked || s->writes_head) return HSP_UDX_EINVAL;
  s->seq = s->remote_acked = seq;
  return 0;
}

int hsp_udx_stream_set_ack(hsp_udx_stream_t *s, uint32_t ack) {
  if (!s || s->ooo_count || s->stat_packets_received) return HSP_UDX_EINVAL;
  s->ack = ack;
  return 0;
}

void hsp_udx_stream_set_firewall(hsp_udx_stream_t *s, hsp_udx_stream_firewall_cb cb) {
  s->firewall_cb = cb;
}

void hsp_udx_stream_set_message_cb(hsp_udx_stream_t *s, hsp_udx_stream_message_cb cb) {
  s->message_cb = cb;
}

int hsp_udx_stream_set_keepalive(hsp_udx_stream_t *s, uint32_t ms) {
  if (!s) return HSP_UDX_EINVAL;
  if (s->closed) return HSP_UDX_ECLOSED;
  s->keepalive_ms = ms;
  update_timer(s);
  return 0;
}

int hsp_udx_stream_set_rwnd_max(hsp_udx_stream_t *s, uint32_t bytes) {
  if (!s) return HSP_UDX_EINVAL;
  s->rwnd_max = bytes;
  return 0;
}

uint32_t hsp_udx_stream_rtt_ms(const hsp_udx_stream_t *s) { return (uint32_t)(s->srtt / 1000); }
uint32_t hsp_udx_stream_cwnd(const hsp_udx_stream_t *s) { return s->cwnd; }
uint32_t hsp_udx_stream_mtu(const hsp_udx_stream_t *s) { return s->mtu; }

const char *hsp_udx_strerror(int err) {
  switch (err) {
  case HSP_UDX_OK: return "ok";
  case HSP_UDX_EINVAL: return "invalid argument or state";
  case HSP_UDX_ENOMEM: return "out of memory";
  case HSP_UDX_EMALFORMED: return "malformed packet";
  case HSP_UDX_ECONNRESET: return "stream reset by peer";
  case HSP_UDX_ETIMEDOUT: return "stream timed out";
  case HSP_UDX_ECANCELED: return "operation canceled";
  case HSP_UDX_EIDINUSE: return "stream id in use";
  case HSP_UDX_ECLOSED: return "closed";
  case HSP_UDX_ESOCKET: return "socket error";
  case HSP_UDX_EAGAIN: return "socket send buffer full";
  case HSP_UDX_EMSGSIZE: return "datagram too large";
  case HSP_UDX_EOF: return "end of stream";
  default: return "unknown error";
  }
}
