#include "congestion.h"

void hsp_udx__cc_init(hsp_udx_stream_t *s) {
  s->cwnd = HSP_UDX_CWND_INIT;
  s->ssthresh = 0xffff;
  s->cwnd_cnt = 0;
  s->ca_state = HSP_UDX_CA_OPEN;
}

void hsp_udx__cc_on_ack(hsp_udx_stream_t *s, uint32_t delivered) {
  /* Packet conservation during recovery: the window stays at ssthresh until it ends. */
  if (s->ca_state == HSP_UDX_CA_RECOVERY) return;
  /* Only grow while the window is actually used, or an idle/app-limited sender would
   * accumulate a huge window and burst it later. */
  if (s->inflight + delivered + 1 < s->cwnd) return;
  if (s->cwnd < s->ssthresh) {
    s->cwnd += delivered;
    if (s->cwnd > s->ssthresh) s->cwnd = s->ssthresh;
  } else {
    s->cwnd_cnt += delivered;
    while (s->cwnd_cnt >= s->cwnd) {
      s->cwnd_cnt -= s->cwnd;
      s->cwnd++;
    }
  }
  if (s->cwnd > HSP_UDX_CWND_MAX) s->cwnd = HSP_UDX_CWND_MAX;
}

void hsp_udx__cc_on_recovery(hsp_udx_stream_t *s) {
  uint32_t t = s->cwnd * 7 / 10;
  s->ssthresh = t < HSP_UDX_CWND_MIN ? HSP_UDX_CWND_MIN : t;
  s->cwnd = s->ssthresh;
  s->cwnd_cnt = 0;
  s->ca_state = HSP_UDX_CA_RECOVERY;
}

void hsp_udx__cc_on_rto(hsp_udx_stream_t *s) {
  uint32_t t = s->cwnd / 2;
  s->ssthresh = t < HSP_UDX_CWND_MIN ? HSP_UDX_CWND_MIN : t;
  s->cwnd = HSP_UDX_CWND_MIN;
  s->cwnd_cnt = 0;
  s->ca_state = HSP_UDX_CA_LOSS;
}
