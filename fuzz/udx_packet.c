// libs: hsp_udx
/*
 * Drives a live stream state machine (sans-I/O core, fake clock) with arbitrary packets,
 * timer expiries and API calls, checking internal invariants after every step.
 * Input: a sequence of records [op:u8][len:u8][len bytes].
 *   op%6 == 0: the bytes are a datagram for the stream (header forced to its id when
 *              op&0x80, so most records reach the state machine)
 *   1: advance the clock by len * 7 ms and fire timers     2: write len bytes
 *   3: toggle reading                                       4: flush
 *   5: write_end, or destroy if len > 250
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static uint64_t now_us;
static uint64_t deadline;
static int closed;

static int f_send(hsp_udx_stream_t *s, const uint8_t *buf, size_t len) {
  (void)s;
  hsp_udx_header_t h;
  if (len < HSP_UDX_HEADER_SIZE || hsp_udx_header_decode(buf, len, &h) < 0) abort();
  return 0;
}
static uint64_t f_now(hsp_udx_stream_t *s) {
  (void)s;
  return now_us;
}
static void f_arm(hsp_udx_stream_t *s, uint64_t d) {
  (void)s;
  deadline = d;
}
static void f_closed(hsp_udx_stream_t *s) {
  (void)s;
  closed = 1;
}
static const hsp_udx_io_t fio = {f_send, f_now, f_arm, NULL, f_closed, NULL};

static uint64_t rx_total;
static void on_read(hsp_udx_stream_t *s, const uint8_t *buf, ssize_t len) {
  (void)s;
  if (len > 0) {
    if (!buf) abort();
    rx_total += (uint64_t)len;
  }
}
static void on_msg(hsp_udx_stream_t *s, const uint8_t *buf, size_t len) {
  (void)s;
  if (len && !buf) abort();
}

static void invariants(hsp_udx_stream_t *s) {
  if (s->closed) return;
  uint32_t n = 0;
  for (hsp_udx_pkt_t *p = s->sent_head; p; p = p->next) {
    if (!(p->flags & HSP_UDX_PKT_IN_SENT)) abort();
    n++;
  }
  if (n != s->inflight) abort();
  int32_t outstanding = hsp_udx_seq_diff(s->seq, s->remote_acked);
  if (outstanding < 0 || (uint32_t)outstanding < s->inflight) abort();
  size_t ready = 0;
  for (hsp_udx_pkt_t *p = s->ready_head; p; p = p->next) ready += p->len;
  if (ready != s->ready_bytes) abort();
  if (s->cwnd < 1) abort();
}

static uint8_t payload[20000];
static hsp_udx_write_t writes[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static hsp_udx_t pool;
  hsp_udx_stream_t s;
  now_us = 1000000;
  deadline = 0;
  closed = 0;
  hsp_udx__stream_core_init(&s, &pool, 7, &fio, NULL);
  hsp_udx__stream_core_connect(&s, 9);
  s.max_payload = HSP_UDX_PAYLOAD_IPV4;
  hsp_udx_stream_read_start(&s, on_read);
  hsp_udx_stream_set_message_cb(&s, on_msg);
  int nw = 0;
  /* Some data in flight so acks, SACKs and losses have something to act on. */
  hsp_udx_stream_write(&writes[nw++], &s, payload, 20000, NULL);
  hsp_udx__stream_flush(&s);

  size_t i = 0;
  while (i + 2 <= size && !closed) {
    uint8_t op = data[i], len = data[i + 1];
    i += 2;
    if (len > size - i) len = (uint8_t)(size - i);
    const uint8_t *b = data + i;
    i += len;
    switch ((op & 0x7f) % 6) {
    case 0: {
      uint8_t pkt[256];
      memcpy(pkt, b, len);
      if ((op & 0x80) && len >= HSP_UDX_HEADER_SIZE) {
        pkt[0] = HSP_UDX_MAGIC;
        pkt[1] = HSP_UDX_VERSION;
        hsp_udx_write_u32(pkt + 4, 7);
      }
      hsp_udx_header_t h;
      if (hsp_udx_header_decode(pkt, len, &h) == 0 && h.id == 7) {
        size_t skip = HSP_UDX_HEADER_SIZE + h.data_offset;
        if (skip <= len) hsp_udx__stream_recv(&s, &h, pkt + skip, len - skip);
      }
      break;
    }
    case 1:
      now_us += (uint64_t)len * 7000;
      if (deadline && deadline <= now_us) hsp_udx__stream_timeout(&s);
      break;
    case 2:
      if (nw < 64 && !s.end_queued) hsp_udx_stream_write(&writes[nw++], &s, payload, (size_t)len * 64, NULL);
      break;
    case 3:
      if (s.reading) hsp_udx_stream_read_stop(&s);
      else hsp_udx_stream_read_start(&s, on_read);
      break;
    case 4:
      hsp_udx__stream_flush(&s);
      break;
    case 5:
      if (len > 250) hsp_udx_stream_destroy(&s);
      else if (nw < 64 && !s.end_queued) hsp_udx_stream_write_end(&writes[nw++], &s, NULL, 0, NULL);
      break;
    }
    invariants(&s);
  }
  if (!s.closed) hsp_udx__stream_close(&s, 0);
  hsp_udx__stream_release(&s);
  return 0;
}
