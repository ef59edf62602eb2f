/* Private to src/udx and its tests: the sans-I/O stream core and its packet buffers. */
#ifndef HSP_UDX_INTERNAL_H
#define HSP_UDX_INTERNAL_H

#include "packet.h"
#include "udx.h"

enum {
  HSP_UDX_PKT_SACKED = 0x01,     /* delivered (cumulatively or selectively) */
  HSP_UDX_PKT_IN_SENT = 0x02,    /* on the in-flight list */
  HSP_UDX_PKT_IN_RQ = 0x04,      /* on the retransmit queue */
  HSP_UDX_PKT_RETRANSMIT = 0x08, /* sent more than once: no RTT samples (Karn) */
};

/* One datagram buffer: an outgoing DATA/END packet kept until acked, or a received payload
 * held out of order / until read. Pooled per hsp_udx_t so the hot path does not malloc. */
typedef struct hsp_udx_pkt {
  struct hsp_udx_pkt *next, *prev;
  uint64_t time_sent;
  uint32_t seq;
  uint16_t len; /* outgoing: whole datagram; incoming: payload bytes at data */
  uint16_t off; /* incoming: offset of unread payload */
  uint8_t type;
  uint8_t flags;
  uint8_t rto_count;
  uint8_t buf[HSP_UDX_MAX_DATAGRAM];
} hsp_udx_pkt_t;

/* Out-of-order packets further than this above rcv.nxt are dropped (bounds memory; a peer
 * honouring our 4 MiB window never gets close). */
#define HSP_UDX_MAX_OOO_DISTANCE 16384u

/* Sets up the state machine with a custom I/O (tests, fuzzing). udx may be a zeroed
 * hsp_udx_t used only for its packet pool. */
void hsp_udx__stream_core_init(hsp_udx_stream_t *s, hsp_udx_t *udx, uint32_t local_id,
                               const hsp_udx_io_t *io, void *io_ctx);
/* Marks a stream connected for the core (socket/addr handled by the I/O layer). */
void hsp_udx__stream_core_connect(hsp_udx_stream_t *s, uint32_t remote_id);
/* One received UDX packet for this stream; payload starts after data_offset padding. */
void hsp_udx__stream_recv(hsp_udx_stream_t *s, const hsp_udx_header_t *h, const uint8_t *payload,
                          size_t len);
void hsp_udx__stream_timeout(hsp_udx_stream_t *s);
/* Sends the ACK postponed through io->defer_ack, if still owed. */
void hsp_udx__stream_send_deferred_ack(hsp_udx_stream_t *s);
/* Sends whatever the windows allow (retransmissions first). */
void hsp_udx__stream_flush(hsp_udx_stream_t *s);
/* Close the state machine with status (idempotent); io->closed is called. */
void hsp_udx__stream_close(hsp_udx_stream_t *s, int status);
/* Returns buffers to the pool; called by the I/O layer once the stream is fully closed. */
void hsp_udx__stream_release(hsp_udx_stream_t *s);
/* Frees the packet pool of an instance. */
void hsp_udx__pool_free(hsp_udx_t *udx);

#endif
