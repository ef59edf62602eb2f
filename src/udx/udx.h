/*
 * hsp_udx: reliable, ordered, congestion-controlled byte streams plus unreliable datagrams
 * over one UDP socket, wire-compatible with udx-native 1.21.3 (libudx wire version 1).
 *
 * Model (as libuv): the caller owns every handle (hsp_udx_t, hsp_udx_socket_t,
 * hsp_udx_stream_t) and request (hsp_udx_write_t) and must keep it alive until its close
 * or completion callback has run. All functions must be called on the loop's thread.
 *
 *   hsp_udx_t          one per loop; owns the id -> stream table shared by all its sockets.
 *   hsp_udx_socket_t   a bound UDP socket. Datagrams that are not UDX packets for a live
 *                      stream (raw datagrams from the DHT layer, packets for unknown ids,
 *                      late packets for closed streams) go to the socket's recv callback.
 *   hsp_udx_stream_t   identified by a local id (unique per hsp_udx_t) and, once connected,
 *                      a remote id + address. There is no handshake: both ends are told
 *                      each other's ids out of band and just start sending.
 *
 * Errors are negative HSP_UDX_E* codes; hsp_udx_strerror() names them.
 */
#ifndef HSP_UDX_H
#define HSP_UDX_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

enum hsp_udx_error {
  HSP_UDX_OK = 0,
  HSP_UDX_EINVAL = -1,       /* bad argument or wrong state for the call */
  HSP_UDX_ENOMEM = -2,       /* allocation failed */
  HSP_UDX_EMALFORMED = -3,   /* not a UDX packet */
  HSP_UDX_ECONNRESET = -4,   /* the peer destroyed the stream */
  HSP_UDX_ETIMEDOUT = -5,    /* the peer stopped acknowledging data */
  HSP_UDX_ECANCELED = -6,    /* the write was pending when the stream was destroyed */
  HSP_UDX_EIDINUSE = -7,     /* another stream already uses this local id */
  HSP_UDX_ECLOSED = -8,      /* stream or socket closed / closing */
  HSP_UDX_ESOCKET = -9,      /* a system call on the socket failed (see errno_value) */
  HSP_UDX_EAGAIN = -10,      /* the socket's send buffer is full, datagram not sent */
  HSP_UDX_EMSGSIZE = -11,    /* datagram too large */
  HSP_UDX_EOF = -12,         /* read callback: the peer ended its side */
};

const char *hsp_udx_strerror(int err);

/* Protocol constants shared with the reference (docs/protocol/udx.md). */
#define HSP_UDX_DEFAULT_RWND (4u * 1024 * 1024)
#define HSP_UDX_MTU_BASE 1200
#define HSP_UDX_PAYLOAD_IPV4 (HSP_UDX_MTU_BASE - 48) /* 1152 */
#define HSP_UDX_PAYLOAD_IPV6 (HSP_UDX_MTU_BASE - 68) /* 1132 */
#define HSP_UDX_MAX_DATAGRAM 2048                  /* receive buffer per datagram */
#define HSP_UDX_RTO_MIN_MS 1000
#define HSP_UDX_RTO_MAX_MS 30000
#define HSP_UDX_MAX_RTO_TIMEOUTS 6
#define HSP_UDX_MTU_MAX 1500
#define HSP_UDX_MTU_STEP 32
#define HSP_UDX_MTU_MAX_PROBES 3

typedef struct hsp_udx hsp_udx_t;
typedef struct hsp_udx_socket hsp_udx_socket_t;
typedef struct hsp_udx_stream hsp_udx_stream_t;
typedef struct hsp_udx_write hsp_udx_write_t;

/* Raw datagram, or a UDX packet no live stream claimed (unknown id, closed stream): the
 * HyperDHT layer accepts incoming streams from these. Tell them apart with
 * hsp_udx_header_decode() (packet.h), which succeeds for UDX packets and yields the id.
 * buf is only valid during the call; v4-mapped sources are reported as AF_INET. */
typedef void (*hsp_udx_socket_recv_cb)(hsp_udx_socket_t *sock, const uint8_t *buf, size_t len,
                                       const struct sockaddr *from);
typedef void (*hsp_udx_socket_close_cb)(hsp_udx_socket_t *sock);

/* Stream data (len > 0) or end of stream (len == HSP_UDX_EOF, buf NULL). */
typedef void (*hsp_udx_stream_read_cb)(hsp_udx_stream_t *s, const uint8_t *buf, ssize_t len);
typedef void (*hsp_udx_stream_message_cb)(hsp_udx_stream_t *s, const uint8_t *buf, size_t len);
/* Final callback: status 0 = both sides ended cleanly or destroyed locally, else an error
 * (HSP_UDX_ECONNRESET, HSP_UDX_ETIMEDOUT, HSP_UDX_ECANCELED when its socket closed).
 * After it returns the stream memory may be freed or re-initialised. */
typedef void (*hsp_udx_stream_close_cb)(hsp_udx_stream_t *s, int status);
/* Called for packets that arrive for this stream on a socket other than its own (including
 * before connect). Return non-zero to drop the packet. HyperDHT uses it to learn the peer's
 * address from the first packet. Without a firewall such packets are processed. */
typedef int (*hsp_udx_stream_firewall_cb)(hsp_udx_stream_t *s, hsp_udx_socket_t *sock,
                                          const struct sockaddr *from);
typedef void (*hsp_udx_stream_remote_changed_cb)(hsp_udx_stream_t *s);
/* status 0 when every byte of the write has been acknowledged by the peer; negative if the
 * stream closed first. */
typedef void (*hsp_udx_write_cb)(hsp_udx_write_t *req, int status);

struct hsp_udx_pkt;

/* Growable ring mapping a sequence number to a packet (private). */
typedef struct hsp_udx_ring {
  struct hsp_udx_pkt **slots;
  uint32_t mask; /* capacity - 1, capacity a power of two (0 slots when unused) */
} hsp_udx_ring_t;

struct hsp_udx {
  uv_loop_t *loop;
  void *data;
  /* private */
  hsp_udx_stream_t **buckets; /* chained by stream->bucket_next */
  uint32_t bucket_mask;
  uint32_t stream_count;
  hsp_udx_stream_t *flush_head; /* streams with a deferred flush (see flush_next) */
  uv_prepare_t prepare;
  int prepare_active;
  int sockets;
  struct hsp_udx_pkt *free_pkts; /* packet pool shared by all streams of the instance */
  size_t free_count;
  void *lingers; /* recently closed streams still re-ACKing their peer's END (socket.c) */
  void (*deinit_cb)(hsp_udx_t *udx);
};

struct hsp_udx_socket {
  hsp_udx_t *udx;
  void *data;
  /* private */
  uv_poll_t poll;
  int fd;
  int family;      /* AF_INET or AF_INET6 once bound */
  int closing;
  int poll_events;
  int errno_value; /* errno of the last failed system call */
  hsp_udx_socket_recv_cb recv_cb;
  hsp_udx_socket_close_cb close_cb;
  hsp_udx_stream_t *blocked_head; /* streams waiting for the socket to become writable */
  hsp_udx_stream_t *ack_head;     /* streams owing an ACK at the end of this receive batch */
  int batching;                   /* >0: datagrams are queued and sent with sendmmsg */
  int no_gso;                     /* UDP GSO refused by the kernel: send plain datagrams */
  void *tx;                       /* batch send buffers (socket.c) */
  void *rx;                       /* batch receive buffers (socket.c) */
};

struct hsp_udx_write {
  void *data;
  /* private */
  hsp_udx_write_t *next;
  hsp_udx_stream_t *stream;
  const uint8_t *buf;
  size_t len;
  size_t sent;      /* bytes already packetised */
  uint32_t end_seq; /* seq of the packet carrying the last byte (valid once sent == len) */
  int packetised;
  int is_end;
  hsp_udx_write_cb cb;
};

/* The I/O side of a stream: libuv in socket.c, a simulated link in the tests. */
typedef struct hsp_udx_io {
  /* Send one datagram to the stream's remote. Returns 0 or HSP_UDX_EAGAIN (try later; the
   * I/O layer calls hsp_udx__stream_flush when the socket is writable again). */
  int (*send)(hsp_udx_stream_t *s, const uint8_t *buf, size_t len);
  uint64_t (*now)(hsp_udx_stream_t *s); /* monotonic microseconds */
  void (*arm)(hsp_udx_stream_t *s, uint64_t deadline_us); /* 0 = no timer */
  void (*want_flush)(hsp_udx_stream_t *s);                 /* flush at the end of this tick */
  void (*closed)(hsp_udx_stream_t *s);                      /* state machine finished */
  /* Optional: the ACK owed for received data may wait until the I/O layer has processed its
   * current batch of datagrams; it then calls hsp_udx__stream_send_deferred_ack. NULL = ACK
   * every DATA/END packet at once. */
  void (*defer_ack)(hsp_udx_stream_t *s);
} hsp_udx_io_t;

/* Private: BBR and pacer state of a stream (bbr.c). Times in us, bandwidth in packets per us
 * scaled by 2^24, gains scaled by 2^8. */
typedef struct {
  /* delivery-rate sampling */
  uint64_t delivered, delivered_ts, first_tx_ts, app_limited;
  struct {
    uint64_t prior_delivered, prior_ts, first_tx_ts, last_sent_ts, rtt_us;
    uint32_t acked, losses, prior_inflight;
    int valid, app_limited;
  } rs;
  uint32_t lost_pending; /* marked lost since the last ACK (RACK timer) */
  /* model */
  int mode, prev_ca_state, full_bw_reached, full_bw_cnt, round_start, packet_conservation;
  int idle_restart, probe_rtt_round_done, cycle_idx, has_pacing_rate;
  uint64_t round_count, next_rtt_delivered, full_bw;
  uint64_t bw_round[10]; /* max bw sampled in each of the last 10 rounds */
  uint64_t min_rtt_us, min_rtt_ts, probe_rtt_done_ts, cycle_ts;
  uint32_t pacing_gain, cwnd_gain, prior_cwnd;
  uint32_t extra_acked[2], ack_epoch_acked;
  uint64_t ack_epoch_ts;
  int extra_acked_win_rtts, extra_acked_win_idx;
  /* pacer */
  uint64_t pacing_rate; /* bytes per second */
  int64_t tokens;
  uint64_t tokens_ts, pace_at;
} hsp_udx_bbr_t;

struct hsp_udx_stream {
  hsp_udx_t *udx;
  void *data;
  uint32_t local_id;
  uint32_t remote_id;
  hsp_udx_socket_t *socket; /* NULL until connected */
  struct sockaddr_storage remote_addr;

  /* private: wiring */
  const hsp_udx_io_t *io;
  void *io_ctx;
  hsp_udx_stream_t *bucket_next, *flush_next, *blocked_next, *ack_next;
  int in_flush_list, in_blocked_list, registered, ack_deferred;
  uv_timer_t timer;
  uint64_t armed_deadline;
  hsp_udx_stream_read_cb read_cb;
  hsp_udx_stream_message_cb message_cb;
  hsp_udx_stream_close_cb close_cb;
  hsp_udx_stream_firewall_cb firewall_cb;
  hsp_udx_stream_remote_changed_cb remote_changed_cb;
  hsp_udx_stream_t *relay_to;
  int close_status;

  /* private: state flags */
  int connected, reading, closed, finalised, ack_needed;
  int end_queued, end_sent, ended;   /* our END: queued by write_end, sent, acked */
  int remote_end_known, remote_ended; /* peer's END: seen, delivered as EOF */
  int eof_pending;
  int remote_change_pending;
  uint32_t remote_change_seq;
  uint32_t end_seq;
  uint32_t remote_end_seq;
  uint32_t max_payload;
  /* private: path MTU search (RFC 8899-like, as libudx: +32 byte padded DATA probes) */
  uint32_t mtu, mtu_overhead, mtu_probe_size;
  int mtu_state, mtu_probe_outstanding, mtu_probe_failures, mtu_disabled;

  /* private: sender */
  uint32_t seq;          /* snd.nxt */
  uint32_t remote_acked; /* snd.una */
  uint32_t send_rwnd;    /* peer's advertised window (bytes) */
  uint32_t wl1, wl2;
  int wl_valid;
  uint64_t last_send;
  hsp_udx_ring_t outgoing;
  struct hsp_udx_pkt *sent_head, *sent_tail; /* in flight, ordered by last transmit time */
  struct hsp_udx_pkt *rq_head, *rq_tail;     /* declared lost, awaiting retransmission */
  uint32_t inflight;                         /* packets in sent list */
  uint32_t sacked;                           /* sacked above snd.una */
  hsp_udx_write_t *writes_head, *writes_tail; /* not yet acked, FIFO */
  hsp_udx_write_t *write_cursor;              /* first write with unsent bytes */
  size_t write_queued_bytes;                  /* bytes not yet acknowledged */

  /* private: RTT / RTO / RACK (microseconds) */
  uint64_t srtt, rttvar, rto, min_rtt, min_rtt_ts;
  uint64_t rack_xmit_ts, rack_rtt;
  uint32_t rack_end_seq, highest_delivered;
  int rack_valid, reordering_seen;
  uint64_t rto_at, reo_at, tlp_at, zwp_at, keepalive_at, zwp_interval;
  uint32_t keepalive_ms;
  int tlp_outstanding;

  /* private: congestion control (packets), BBR v1 in bbr.c */
  int ca_state; /* 0 open, 1 recovery, 2 loss */
  uint32_t high_seq;
  uint32_t cwnd;
  hsp_udx_bbr_t bbr;

  /* private: receiver */
  uint32_t ack;      /* rcv.nxt */
  uint32_t rwnd_max; /* what we advertise when nothing is buffered */
  hsp_udx_ring_t incoming;          /* out-of-order packets above rcv.nxt */
  uint32_t ooo_count;
  size_t ooo_bytes;
  struct hsp_udx_pkt *ready_head, *ready_tail; /* in order, not yet read (reading stopped) */
  size_t ready_bytes;

  /* private: statistics */
  uint64_t stat_retransmits, stat_rto_count, stat_fast_recoveries, stat_packets_sent;
  uint64_t stat_packets_received;
};

/* ---- instance ---- */
int hsp_udx_init(uv_loop_t *loop, hsp_udx_t *udx);
/* Frees the instance's tables; every socket and stream must have been closed. The instance
 * owns a libuv handle that finishes closing on the next loop iteration: with plain deinit
 * the memory of *udx must stay valid until then; deinit_cb calls cb once it may be freed. */
void hsp_udx_deinit(hsp_udx_t *udx);
void hsp_udx_deinit_cb(hsp_udx_t *udx, void (*cb)(hsp_udx_t *udx));

/* ---- socket ---- */
int hsp_udx_socket_init(hsp_udx_t *udx, hsp_udx_socket_t *sock);
/* Binds to addr (AF_INET or AF_INET6, port 0 = any). An AF_INET6 socket is dual-stack. */
int hsp_udx_socket_bind(hsp_udx_socket_t *sock, const struct sockaddr *addr);
int hsp_udx_socket_getsockname(hsp_udx_socket_t *sock, struct sockaddr_storage *out);
/* Starts delivering raw / unclaimed datagrams to cb (streams are served regardless). */
int hsp_udx_socket_recv_start(hsp_udx_socket_t *sock, hsp_udx_socket_recv_cb cb);
int hsp_udx_socket_recv_stop(hsp_udx_socket_t *sock);
/* Sends one raw datagram now (no UDX header). HSP_UDX_EAGAIN if the send buffer is full. */
int hsp_udx_socket_send(hsp_udx_socket_t *sock, const uint8_t *buf, size_t len,
                        const struct sockaddr *to);
/* Destroys every stream still connected to the socket (close_cb status HSP_UDX_ECANCELED),
 * then closes it; cb runs from the loop once nothing references the socket. */
int hsp_udx_socket_close(hsp_udx_socket_t *sock, hsp_udx_socket_close_cb cb);

/* ---- stream ---- */
int hsp_udx_stream_init(hsp_udx_t *udx, hsp_udx_stream_t *s, uint32_t local_id,
                        hsp_udx_stream_close_cb close_cb);
/* Initial sequence numbers (default 0); only before any data is sent/received. */
int hsp_udx_stream_set_seq(hsp_udx_stream_t *s, uint32_t seq);
int hsp_udx_stream_set_ack(hsp_udx_stream_t *s, uint32_t ack);
void hsp_udx_stream_set_firewall(hsp_udx_stream_t *s, hsp_udx_stream_firewall_cb cb);
void hsp_udx_stream_set_message_cb(hsp_udx_stream_t *s, hsp_udx_stream_message_cb cb);
/* Heartbeat every ms while nothing is in flight (0 = off, the default). */
int hsp_udx_stream_set_keepalive(hsp_udx_stream_t *s, uint32_t ms);
/* Local receive window advertised to the peer (default 4 MiB). */
int hsp_udx_stream_set_rwnd_max(hsp_udx_stream_t *s, uint32_t bytes);
/* Purely local: nothing is sent. addr is copied. */
int hsp_udx_stream_connect(hsp_udx_stream_t *s, hsp_udx_socket_t *sock, uint32_t remote_id,
                           const struct sockaddr *addr);
/* Data is delivered via cb while reading; stopping shrinks the advertised window as data
 * accumulates, so the peer stops sending (flow control). */
int hsp_udx_stream_read_start(hsp_udx_stream_t *s, hsp_udx_stream_read_cb cb);
int hsp_udx_stream_read_stop(hsp_udx_stream_t *s);
/* Queues buf (not copied: keep it alive until cb). cb(req, 0) once the peer acked it all.
 * Because completion waits for the ACK, a writer that limits itself to N bytes outstanding
 * also limits the window to N: keep a few MiB queued for full speed on fast paths. */
int hsp_udx_stream_write(hsp_udx_write_t *req, hsp_udx_stream_t *s, const uint8_t *buf,
                         size_t len, hsp_udx_write_cb cb);
/* Like write, then half-closes our direction (END). len may be 0. */
int hsp_udx_stream_write_end(hsp_udx_write_t *req, hsp_udx_stream_t *s, const uint8_t *buf,
                             size_t len, hsp_udx_write_cb cb);
/* Bytes written but not yet acknowledged: the caller's back-pressure signal. */
size_t hsp_udx_stream_write_queue_size(const hsp_udx_stream_t *s);
/* Payload bytes received and held (in order but not read, or out of order). At most 1.5 x
 * the receive window, whatever the peer sends. */
size_t hsp_udx_stream_read_queue_size(const hsp_udx_stream_t *s);
/* Unreliable MESSAGE datagram on this stream (≤ the stream's max payload). */
int hsp_udx_stream_send(hsp_udx_stream_t *s, const uint8_t *buf, size_t len);
/* Abortive close: sends DESTROY if connected, fails pending writes with ECANCELED,
 * close_cb runs with status 0. */
int hsp_udx_stream_destroy(hsp_udx_stream_t *s);
/* Moves a connected stream to another socket / remote id / address (e.g. after a hole punch).
 * cb runs once everything sent before the change has been acked (immediately if nothing is
 * outstanding). */
int hsp_udx_stream_change_remote(hsp_udx_stream_t *s, hsp_udx_socket_t *sock, uint32_t remote_id,
                                 const struct sockaddr *addr,
                                 hsp_udx_stream_remote_changed_cb cb);
/* Forwards every packet arriving for s verbatim (id rewritten) to dest's remote (blind relay).
 * One direction: call it on both streams to splice them. A forwarded DESTROY closes s with
 * HSP_UDX_ECONNRESET; closing dest closes s the same way; destroying s sends nothing. */
int hsp_udx_stream_relay_to(hsp_udx_stream_t *s, hsp_udx_stream_t *dest);

/* Introspection. */
uint32_t hsp_udx_stream_rtt_ms(const hsp_udx_stream_t *s);
uint32_t hsp_udx_stream_mtu(const hsp_udx_stream_t *s);
uint32_t hsp_udx_stream_cwnd(const hsp_udx_stream_t *s);

#endif
