#include "bbr.h"

#include <string.h>

#define BW_SCALE 24
#define BW_UNIT (1ull << BW_SCALE)
#define GAIN_UNIT 256u
#define HIGH_GAIN 739u  /* 2/ln2 = 2.885: doubles the delivery rate each round */
#define DRAIN_GAIN 88u  /* 1/2.885: drains startup's queue in about one round */
#define CWND_GAIN 512u  /* PROBE_BW tolerates ack delay/aggregation up to 2 BDP */
#define CYCLE_LEN 8
#define CYCLE_ENTRY 4   /* PROBE_BW starts in a gain-1 phase, as libudx does */
#define BW_ROUNDS 10
#define MIN_RTT_WIN_US (10ull * 1000 * 1000)
#define PROBE_RTT_US (200ull * 1000)
#define FULL_BW_THRESH 320u /* 1.25: growth below this for FULL_BW_ROUNDS means full pipe */
#define FULL_BW_ROUNDS 3
#define EXTRA_ACKED_MAX_US (100ull * 1000)
#define EXTRA_ACKED_WIN_RTTS 5
#define PACE_BURST_US 2000ull /* pace in bursts: event-loop timers tick in whole ms */
#define PACE_MIN_BURST_PKTS 10

static const uint32_t cycle_gain[CYCLE_LEN] = {320, 192, 256, 256, 256, 256, 256, 256};

static uint64_t max_bw(const hsp_udx_stream_t *s) {
  uint64_t m = 0;
  for (int i = 0; i < BW_ROUNDS; i++) {
    if (s->bbr.bw_round[i] > m) m = s->bbr.bw_round[i];
  }
  return m;
}

/* Packets needed to fill bw * min_rtt, times gain (rounded up). */
static uint32_t bdp(const hsp_udx_stream_t *s, uint64_t bw, uint32_t gain) {
  if (s->bbr.min_rtt_us == UINT64_MAX) return HSP_UDX_CWND_INIT;
  uint64_t w = bw * s->bbr.min_rtt_us;
  uint64_t b = ((w * gain) / GAIN_UNIT + BW_UNIT - 1) / BW_UNIT;
  return b > HSP_UDX_CWND_MAX ? HSP_UDX_CWND_MAX : (uint32_t)b;
}

static uint64_t rate_bytes_per_sec(const hsp_udx_stream_t *s, uint64_t bw, uint32_t gain) {
  /* 1% under the estimate, so the bottleneck queue drains instead of slowly growing. */
  double r = (double)bw / (double)BW_UNIT * 1e6 * s->max_payload * gain / GAIN_UNIT * 0.99;
  return r > 1e12 ? (uint64_t)1e12 : (uint64_t)r; /* 1 TB/s: keeps pacer math in range */
}

static void set_pacing_rate(hsp_udx_stream_t *s, uint64_t bw, uint32_t gain) {
  hsp_udx_bbr_t *b = &s->bbr;
  uint64_t rate = rate_bytes_per_sec(s, bw, gain);
  if (!b->has_pacing_rate && s->srtt) {
    /* First RTT known: start from the initial window over that RTT rather than 1 ms. */
    uint64_t ibw = (uint64_t)s->cwnd * BW_UNIT / s->srtt;
    b->pacing_rate = rate_bytes_per_sec(s, ibw, HIGH_GAIN);
    b->has_pacing_rate = 1;
  }
  if (bw && (b->full_bw_reached || rate > b->pacing_rate)) b->pacing_rate = rate;
}

void hsp_udx__bbr_init(hsp_udx_stream_t *s) {
  hsp_udx_bbr_t *b = &s->bbr;
  memset(b, 0, sizeof(*b));
  s->cwnd = HSP_UDX_CWND_INIT;
  s->ca_state = HSP_UDX_CA_OPEN;
  b->min_rtt_us = UINT64_MAX;
  b->mode = HSP_UDX_BBR_STARTUP;
  b->pacing_gain = HIGH_GAIN;
  b->cwnd_gain = HIGH_GAIN;
  b->prior_cwnd = HSP_UDX_CWND_INIT;
  /* Until an RTT is known: the initial window every ms, with startup gain (§4 table). */
  b->pacing_rate = rate_bytes_per_sec(s, HSP_UDX_CWND_INIT * BW_UNIT / 1000, HIGH_GAIN);
  b->tokens = (int64_t)HSP_UDX_CWND_INIT * s->max_payload;
}

/* ---------- delivery-rate sampling ---------- */

void hsp_udx__bbr_on_send(hsp_udx_stream_t *s, hsp_udx_pkt_t *p, uint64_t now) {
  hsp_udx_bbr_t *b = &s->bbr;
  if (s->inflight == 0) {
    /* Restarting from idle: the send phase starts now, and an application-limited
     * PROBE_BW sender resumes at the estimated rate, not a probing or draining one. */
    b->first_tx_ts = b->delivered_ts = now;
    if (b->app_limited) {
      b->idle_restart = 1;
      b->ack_epoch_ts = now;
      b->ack_epoch_acked = 0;
      if (b->mode == HSP_UDX_BBR_PROBE_BW) set_pacing_rate(s, max_bw(s), GAIN_UNIT);
    }
  }
  p->tx_delivered = b->delivered;
  p->tx_delivered_ts = b->delivered_ts;
  p->tx_first_tx_ts = b->first_tx_ts;
  if (b->app_limited) p->flags |= HSP_UDX_PKT_APP_LIMITED;
  else p->flags &= (uint8_t)~HSP_UDX_PKT_APP_LIMITED;
}

void hsp_udx__bbr_ack_begin(hsp_udx_stream_t *s) {
  hsp_udx_bbr_t *b = &s->bbr;
  memset(&b->rs, 0, sizeof(b->rs));
  b->rs.rtt_us = UINT64_MAX;
  b->rs.prior_inflight = s->inflight;
}

void hsp_udx__bbr_on_delivered(hsp_udx_stream_t *s, const hsp_udx_pkt_t *p, uint64_t rtt_us) {
  hsp_udx_bbr_t *b = &s->bbr;
  b->delivered++;
  b->rs.acked++;
  if (rtt_us < b->rs.rtt_us) b->rs.rtt_us = rtt_us;
  /* The sample spans from the most recently sent of the delivered packets. */
  if (!b->rs.valid || p->time_sent >= b->rs.last_sent_ts) {
    b->rs.valid = 1;
    b->rs.prior_delivered = p->tx_delivered;
    b->rs.prior_ts = p->tx_delivered_ts;
    b->rs.first_tx_ts = p->tx_first_tx_ts;
    b->rs.last_sent_ts = p->time_sent;
    b->rs.app_limited = (p->flags & HSP_UDX_PKT_APP_LIMITED) != 0;
    b->first_tx_ts = p->time_sent;
  }
}

void hsp_udx__bbr_on_lost(hsp_udx_stream_t *s) { s->bbr.lost_pending++; }

void hsp_udx__bbr_app_limited(hsp_udx_stream_t *s) {
  uint64_t mark = s->bbr.delivered + s->inflight;
  s->bbr.app_limited = mark ? mark : 1;
}

/* Delivered packets per us (scaled) over the sample, or 0 if there is no valid sample.
 * The interval is the longer of the send and ack phases: ACK compression cannot inflate
 * the estimate beyond the sending rate, nor a burst beyond the ack rate. */
static uint64_t sample_bw(hsp_udx_stream_t *s, uint64_t now, uint64_t *delivered) {
  hsp_udx_bbr_t *b = &s->bbr;
  *delivered = 0;
  if (!b->rs.valid || !b->rs.prior_ts) return 0;
  uint64_t snd = b->rs.last_sent_ts - b->rs.first_tx_ts;
  uint64_t ack = now - b->rs.prior_ts;
  uint64_t interval = snd > ack ? snd : ack;
  *delivered = b->delivered - b->rs.prior_delivered;
  if (!interval || (s->min_rtt && interval < s->min_rtt)) return 0;
  return *delivered * BW_UNIT / interval;
}

/* ---------- the model ---------- */

static void enter_probe_bw(hsp_udx_stream_t *s, uint64_t now) {
  s->bbr.mode = HSP_UDX_BBR_PROBE_BW;
  s->bbr.cycle_idx = CYCLE_ENTRY;
  s->bbr.cycle_ts = now;
}

static void update_bw(hsp_udx_stream_t *s, uint64_t now) {
  hsp_udx_bbr_t *b = &s->bbr;
  b->round_start = 0;
  uint64_t delivered;
  uint64_t bw = sample_bw(s, now, &delivered);
  if (!b->rs.valid || !b->rs.prior_ts) return;
  /* A round trip ends when a packet sent after the previous round's end is delivered. */
  if (b->rs.prior_delivered >= b->next_rtt_delivered) {
    b->next_rtt_delivered = b->delivered;
    b->round_count++;
    b->round_start = 1;
    b->packet_conservation = 0;
    b->bw_round[b->round_count % BW_ROUNDS] = 0;
  }
  if (!bw) return;
  /* App-limited samples only count when they show more than we knew. */
  if (!b->rs.app_limited || bw >= max_bw(s)) {
    uint64_t *slot = &b->bw_round[b->round_count % BW_ROUNDS];
    if (bw > *slot) *slot = bw;
  }
}

static void update_ack_aggregation(hsp_udx_stream_t *s, uint64_t now) {
  hsp_udx_bbr_t *b = &s->bbr;
  if (!b->rs.acked) return;
  if (b->round_start) {
    if (++b->extra_acked_win_rtts >= EXTRA_ACKED_WIN_RTTS) {
      b->extra_acked_win_rtts = 0;
      b->extra_acked_win_idx ^= 1;
      b->extra_acked[b->extra_acked_win_idx] = 0;
    }
  }
  /* Packets acked beyond what the estimated bandwidth explains since the epoch began. */
  uint64_t expected = max_bw(s) * (now - b->ack_epoch_ts) / BW_UNIT;
  if (b->ack_epoch_acked <= expected || b->ack_epoch_acked + b->rs.acked >= (1u << 20)) {
    b->ack_epoch_acked = 0;
    b->ack_epoch_ts = now;
    expected = 0;
  }
  b->ack_epoch_acked += b->rs.acked;
  uint64_t extra = b->ack_epoch_acked - expected;
  if (extra > s->cwnd) extra = s->cwnd;
  if (extra > b->extra_acked[b->extra_acked_win_idx]) {
    b->extra_acked[b->extra_acked_win_idx] = (uint32_t)extra;
  }
}

static void update_cycle_phase(hsp_udx_stream_t *s, uint64_t now) {
  hsp_udx_bbr_t *b = &s->bbr;
  if (b->mode != HSP_UDX_BBR_PROBE_BW) return;
  uint32_t gain = cycle_gain[b->cycle_idx];
  int full = now - b->cycle_ts > b->min_rtt_us;
  uint32_t inflight = b->rs.prior_inflight;
  int next;
  if (gain == GAIN_UNIT) next = full;
  /* Probe until the pipe holds gain·BDP (or loss says it cannot)... */
  else if (gain > GAIN_UNIT) next = full && (b->rs.losses || inflight >= bdp(s, max_bw(s), gain));
  /* ...and drain until the probe's queue is gone, or one round passed. */
  else next = full || inflight <= bdp(s, max_bw(s), GAIN_UNIT);
  if (!next) return;
  b->cycle_idx = (b->cycle_idx + 1) % CYCLE_LEN;
  b->cycle_ts = now;
}

static void check_full_bw(hsp_udx_stream_t *s) {
  hsp_udx_bbr_t *b = &s->bbr;
  if (b->full_bw_reached || !b->round_start || b->rs.app_limited) return;
  uint64_t bw = max_bw(s);
  if (bw >= b->full_bw * FULL_BW_THRESH / GAIN_UNIT) {
    b->full_bw = bw;
    b->full_bw_cnt = 0;
    return;
  }
  if (++b->full_bw_cnt >= FULL_BW_ROUNDS) b->full_bw_reached = 1;
}

static void check_drain(hsp_udx_stream_t *s, uint64_t now) {
  hsp_udx_bbr_t *b = &s->bbr;
  if (b->mode == HSP_UDX_BBR_STARTUP && b->full_bw_reached) b->mode = HSP_UDX_BBR_DRAIN;
  if (b->mode == HSP_UDX_BBR_DRAIN && s->inflight <= bdp(s, max_bw(s), GAIN_UNIT)) {
    enter_probe_bw(s, now);
  }
}

static void save_cwnd(hsp_udx_stream_t *s) {
  hsp_udx_bbr_t *b = &s->bbr;
  if (b->prev_ca_state == HSP_UDX_CA_OPEN && b->mode != HSP_UDX_BBR_PROBE_RTT) {
    b->prior_cwnd = s->cwnd;
  } else if (s->cwnd > b->prior_cwnd) {
    b->prior_cwnd = s->cwnd;
  }
}

static void update_min_rtt(hsp_udx_stream_t *s, uint64_t now) {
  hsp_udx_bbr_t *b = &s->bbr;
  int expired = b->min_rtt_us != UINT64_MAX && now > b->min_rtt_ts + MIN_RTT_WIN_US;
  if (b->rs.rtt_us != UINT64_MAX && (b->rs.rtt_us < b->min_rtt_us || expired)) {
    b->min_rtt_us = b->rs.rtt_us ? b->rs.rtt_us : 1;
    b->min_rtt_ts = now;
  }
  if (expired && !b->idle_restart && b->mode != HSP_UDX_BBR_PROBE_RTT) {
    /* No lower RTT for 10 s: drain the pipe to (almost) nothing to measure the real one. */
    b->mode = HSP_UDX_BBR_PROBE_RTT;
    save_cwnd(s);
    b->probe_rtt_done_ts = 0;
  }
  if (b->mode == HSP_UDX_BBR_PROBE_RTT) {
    hsp_udx__bbr_app_limited(s); /* samples taken at cwnd 4 say nothing about bw */
    if (!b->probe_rtt_done_ts && s->inflight <= HSP_UDX_CWND_MIN) {
      b->probe_rtt_done_ts = now + PROBE_RTT_US;
      b->probe_rtt_round_done = 0;
      b->next_rtt_delivered = b->delivered;
    } else if (b->probe_rtt_done_ts) {
      if (b->round_start) b->probe_rtt_round_done = 1;
      if (b->probe_rtt_round_done && now > b->probe_rtt_done_ts) {
        b->min_rtt_ts = now;
        if (b->prior_cwnd > s->cwnd) s->cwnd = b->prior_cwnd;
        if (b->full_bw_reached) enter_probe_bw(s, now);
        else b->mode = HSP_UDX_BBR_STARTUP;
      }
    }
  }
  if (b->rs.acked) b->idle_restart = 0;
}

static void update_gains(hsp_udx_stream_t *s) {
  hsp_udx_bbr_t *b = &s->bbr;
  switch (b->mode) {
  case HSP_UDX_BBR_STARTUP: b->pacing_gain = HIGH_GAIN; b->cwnd_gain = HIGH_GAIN; break;
  case HSP_UDX_BBR_DRAIN: b->pacing_gain = DRAIN_GAIN; b->cwnd_gain = HIGH_GAIN; break;
  case HSP_UDX_BBR_PROBE_BW:
    b->pacing_gain = cycle_gain[b->cycle_idx];
    b->cwnd_gain = CWND_GAIN;
    break;
  default: b->pacing_gain = GAIN_UNIT; b->cwnd_gain = GAIN_UNIT; break;
  }
}

/* Loss response: shrink by what was lost; one round of packet conservation on entering
 * recovery; the pre-loss window comes back when recovery ends. Returns 1 if the window is
 * pinned by conservation this ACK. */
static int recover_or_restore(hsp_udx_stream_t *s, uint32_t *cwnd) {
  hsp_udx_bbr_t *b = &s->bbr;
  uint32_t w = s->cwnd, acked = b->rs.acked;
  if (b->rs.losses) w = w > b->rs.losses ? w - b->rs.losses : 1;
  if (s->ca_state == HSP_UDX_CA_RECOVERY && b->prev_ca_state != HSP_UDX_CA_RECOVERY) {
    b->packet_conservation = 1;
    b->next_rtt_delivered = b->delivered;
    w = s->inflight + acked;
  } else if (b->prev_ca_state != HSP_UDX_CA_OPEN && s->ca_state == HSP_UDX_CA_OPEN) {
    if (b->prior_cwnd > w) w = b->prior_cwnd;
    b->packet_conservation = 0;
  }
  b->prev_ca_state = s->ca_state;
  if (b->packet_conservation) {
    if (s->inflight + acked > w) w = s->inflight + acked;
    *cwnd = w;
    return 1;
  }
  *cwnd = w;
  return 0;
}

static void set_cwnd(hsp_udx_stream_t *s, uint64_t bw) {
  hsp_udx_bbr_t *b = &s->bbr;
  uint32_t w;
  if (!recover_or_restore(s, &w)) {
    uint64_t target = bdp(s, bw, b->cwnd_gain);
    if (b->full_bw_reached) {
      /* Allowance for ACKs that arrive in bursts (delayed/coalesced ACKs, receive batches):
       * without it the window empties between bursts. */
      uint64_t aggr = b->extra_acked[0] > b->extra_acked[1] ? b->extra_acked[0] : b->extra_acked[1];
      uint64_t cap = bw * EXTRA_ACKED_MAX_US / BW_UNIT;
      target += aggr < cap ? aggr : cap;
    }
    target += 3; /* a few packets of slack for the pacer's bursts */
    if (b->full_bw_reached) {
      uint64_t n = (uint64_t)w + b->rs.acked;
      w = (uint32_t)(n < target ? n : target);
    } else if (w < target || b->delivered < HSP_UDX_CWND_INIT) {
      w += b->rs.acked;
    }
    if (w < HSP_UDX_CWND_MIN) w = HSP_UDX_CWND_MIN;
  }
  if (w > HSP_UDX_CWND_MAX) w = HSP_UDX_CWND_MAX;
  if (w < 1) w = 1;
  if (b->mode == HSP_UDX_BBR_PROBE_RTT && w > HSP_UDX_CWND_MIN) w = HSP_UDX_CWND_MIN;
  s->cwnd = w;
}

void hsp_udx__bbr_ack_end(hsp_udx_stream_t *s, uint64_t now) {
  hsp_udx_bbr_t *b = &s->bbr;
  if (b->app_limited && b->delivered > b->app_limited) b->app_limited = 0;
  if (b->rs.acked) b->delivered_ts = now;
  b->rs.losses = b->lost_pending;
  b->lost_pending = 0;
  update_bw(s, now);
  update_ack_aggregation(s, now);
  update_cycle_phase(s, now);
  check_full_bw(s);
  check_drain(s, now);
  update_min_rtt(s, now);
  update_gains(s);
  uint64_t bw = max_bw(s);
  set_pacing_rate(s, bw, b->pacing_gain);
  if (b->rs.acked) set_cwnd(s, bw);
}

void hsp_udx__bbr_on_recovery(hsp_udx_stream_t *s) { save_cwnd(s); }

void hsp_udx__bbr_on_rto(hsp_udx_stream_t *s) {
  hsp_udx_bbr_t *b = &s->bbr;
  save_cwnd(s);
  /* Everything in flight is presumed lost: restart from the minimum window, and let the
   * full-pipe check start over from the next round. */
  b->prev_ca_state = HSP_UDX_CA_LOSS;
  b->full_bw = 0;
  b->round_start = 1;
  s->cwnd = HSP_UDX_CWND_MIN;
}

/* ---------- pacer ---------- */

static int64_t burst_bytes(const hsp_udx_stream_t *s) {
  uint64_t b = s->bbr.pacing_rate * PACE_BURST_US / 1000000;
  uint64_t lo = (uint64_t)PACE_MIN_BURST_PKTS * s->max_payload;
  if (b < lo) b = lo;
  return b > (1ull << 40) ? (int64_t)(1ll << 40) : (int64_t)b;
}

int hsp_udx__pacer_ready(hsp_udx_stream_t *s, uint64_t now) {
  hsp_udx_bbr_t *b = &s->bbr;
  int64_t cap = burst_bytes(s);
  if (!b->tokens_ts) b->tokens_ts = now; /* first send: only the initial tokens */
  if (now > b->tokens_ts) {
    uint64_t dt = now - b->tokens_ts;
    if (dt > 1000000) dt = 1000000;
    uint64_t add = dt * b->pacing_rate / 1000000;
    if (add > (uint64_t)cap) add = (uint64_t)cap;
    b->tokens += (int64_t)add;
    if (b->tokens > cap) b->tokens = cap;
    b->tokens_ts = now;
  }
  if (b->tokens > 0) {
    b->pace_at = 0;
    return 1;
  }
  /* Wake when a burst's worth is there, not after every packet. */
  uint64_t need = (uint64_t)(-b->tokens) + (uint64_t)cap / 2;
  uint64_t rate = b->pacing_rate ? b->pacing_rate : 1;
  b->pace_at = now + 1 + need * 1000000 / rate;
  return 0;
}

void hsp_udx__pacer_consume(hsp_udx_stream_t *s, size_t bytes) {
  s->bbr.tokens -= (int64_t)bytes;
}
