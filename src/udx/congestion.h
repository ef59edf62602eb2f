/*
 * Sender-side congestion control, in packets. The peer cannot observe it (docs/protocol/udx.md
 * §4), so we use a loss-based controller (slow start, additive increase, multiplicative
 * decrease by 0.7 as CUBIC does, RTO collapse) driven by the RACK loss detector in stream.c.
 * The reference's BBR v1 is not reproduced.
 */
#ifndef HSP_UDX_CONGESTION_H
#define HSP_UDX_CONGESTION_H

#include "udx.h"

#define HSP_UDX_CWND_INIT 10
#define HSP_UDX_CWND_MIN 4
#define HSP_UDX_CWND_MAX 65536

enum { HSP_UDX_CA_OPEN = 0, HSP_UDX_CA_RECOVERY = 1, HSP_UDX_CA_LOSS = 2 };

void hsp_udx__cc_init(hsp_udx_stream_t *s);
/* delivered packets newly acked (cumulatively or by SACK) */
void hsp_udx__cc_on_ack(hsp_udx_stream_t *s, uint32_t delivered);
/* first loss detected while OPEN */
void hsp_udx__cc_on_recovery(hsp_udx_stream_t *s);
void hsp_udx__cc_on_rto(hsp_udx_stream_t *s);

#endif
