/*
 * Sender-side congestion control: BBR v1 as libudx runs it (modelled on Linux tcp_bbr.c,
 * docs/protocol/udx.md §4), fed by delivery-rate samples (Linux tcp_rate.c), plus the token
 * bucket pacer it drives. Sans-I/O: every entry point takes the stream's clock (us); the
 * pacer reports when it next allows a send through s->bbr.pace_at. The peer cannot observe
 * any of this, so behaviour, not bit-exactness, is what follows the reference.
 */
#ifndef HSP_UDX_BBR_H
#define HSP_UDX_BBR_H

#include "internal.h"

#define HSP_UDX_CWND_INIT 10
#define HSP_UDX_CWND_MIN 4
#define HSP_UDX_CWND_MAX 65536

enum { HSP_UDX_CA_OPEN = 0, HSP_UDX_CA_RECOVERY = 1, HSP_UDX_CA_LOSS = 2 };
enum { HSP_UDX_BBR_STARTUP, HSP_UDX_BBR_DRAIN, HSP_UDX_BBR_PROBE_BW, HSP_UDX_BBR_PROBE_RTT };

void hsp_udx__bbr_init(hsp_udx_stream_t *s);
/* Before p goes on the wire (new or again); s->inflight does not count it yet. */
void hsp_udx__bbr_on_send(hsp_udx_stream_t *s, hsp_udx_pkt_t *p, uint64_t now);
/* Start of an ACK's processing. */
void hsp_udx__bbr_ack_begin(hsp_udx_stream_t *s);
/* p (which was sent) is newly delivered by this ACK; rtt_us is its RTT, or UINT64_MAX if it
 * was retransmitted (ambiguous). */
void hsp_udx__bbr_on_delivered(hsp_udx_stream_t *s, const hsp_udx_pkt_t *p, uint64_t rtt_us);
void hsp_udx__bbr_on_lost(hsp_udx_stream_t *s);
/* End of an ACK that delivered something, after loss detection and ca_state updates. */
void hsp_udx__bbr_ack_end(hsp_udx_stream_t *s, uint64_t now);
/* ca_state is about to leave OPEN: first loss (RECOVERY) or an RTO (LOSS). */
void hsp_udx__bbr_on_recovery(hsp_udx_stream_t *s);
void hsp_udx__bbr_on_rto(hsp_udx_stream_t *s);
/* The sender ran out of data with window to spare: rate samples until the current flight
 * is delivered understate the path and must not lower the bandwidth estimate. */
void hsp_udx__bbr_app_limited(hsp_udx_stream_t *s);

/* Pacer: 1 if a packet may go now (tokens left; a packet may overdraw), else 0 and
 * s->bbr.pace_at is set to when tokens will be available again. */
int hsp_udx__pacer_ready(hsp_udx_stream_t *s, uint64_t now);
void hsp_udx__pacer_consume(hsp_udx_stream_t *s, size_t bytes);

#endif
