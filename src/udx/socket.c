/*
 * The libuv side: a non-blocking UDP socket per hsp_udx_socket_t (our own fd watched by a
 * uv_poll_t, so we can batch with recvmmsg and wait for writability), the id -> stream
 * table, and the stream I/O vtable (sendto, uv_timer, deferred flush in the prepare phase,
 * so writes made in one loop iteration are coalesced into full packets).
 */
#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define RX_BATCH 32
#define RX_ROUNDS 8 /* recvmmsg calls per readable event, so one busy socket cannot starve */
/* How long a cleanly closed stream keeps re-ACKing its peer's END retransmits (the peer gives
 * up after ~13 s if our last ACK was lost; libudx itself does not linger). */
#define LINGER_US (15ull * 1000 * 1000)

typedef struct hsp_udx_linger {
  struct hsp_udx_linger *next;
  hsp_udx_socket_t *socket;
  struct sockaddr_storage addr;
  uint32_t local_id, remote_id, seq, ack, rwnd;
  uint64_t expires;
} linger_t;

#define TX_BATCH 64

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define GSO_MAX_BYTES 65000 /* a GSO super-datagram must stay below the 64 KiB UDP limit */

typedef struct tx_batch {
  struct mmsghdr groups[TX_BATCH]; /* what is handed to sendmmsg: runs of equal-size datagrams */
  int group_len[TX_BATCH];
  char cmsg[TX_BATCH][CMSG_SPACE(sizeof(uint16_t))];
  struct mmsghdr msgs[TX_BATCH];
  struct iovec iov[TX_BATCH];
  struct sockaddr_storage addrs[TX_BATCH];
  uint8_t bufs[TX_BATCH][HSP_UDX_MAX_DATAGRAM];
  int n;
} tx_batch_t;

#ifndef UDP_GRO
#define UDP_GRO 104
#endif
/* With UDP_GRO the kernel may hand over a run of equal-size datagrams (the segments of a peer's
 * GSO send, e.g. on loopback) as one buffer, saving the per-datagram receive path; a slot so
 * holds up to 64 KiB. Pages a slot never receives into are never touched. */
#define RX_SLOT 65536

typedef struct rx_batch {
  struct mmsghdr msgs[RX_BATCH];
  struct iovec iov[RX_BATCH];
  struct sockaddr_storage addrs[RX_BATCH];
  char cmsg[RX_BATCH][CMSG_SPACE(sizeof(int))];
  uint8_t bufs[RX_BATCH][RX_SLOT];
} rx_batch_t;

/* The segment size of a coalesced receive, or 0 for a single datagram. */
static size_t gro_segment(const struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR((struct msghdr *)h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int seg;
      memcpy(&seg, CMSG_DATA(c), sizeof(seg));
      return seg > 0 ? (size_t)seg : 0;
    }
  }
  return 0;
}

static int linger_answer(hsp_udx_socket_t *sock, const hsp_udx_header_t *h);
static void batch_begin(hsp_udx_socket_t *sock);
static void batch_end(hsp_udx_socket_t *sock);
static void linger_drop(hsp_udx_t *u, hsp_udx_socket_t *sock);

/* ---------- addresses ---------- */

static socklen_t addr_len(const struct sockaddr *a) {
  return a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* A dual-stack AF_INET6 socket can only send to v4-mapped addresses. */
static int addr_for_socket(const hsp_udx_socket_t *sock, const struct sockaddr *in,
                           struct sockaddr_storage *out) {
  if (!in || (in->sa_family != AF_INET && in->sa_family != AF_INET6)) return HSP_UDX_EINVAL;
  memset(out, 0, sizeof(*out));
  if (sock->family == AF_INET6 && in->sa_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)in;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = v4->sin_port;
    v6->sin6_addr.s6_addr[10] = 0xff;
    v6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&v6->sin6_addr.s6_addr[12], &v4->sin_addr, 4);
    return 0;
  }
  if (sock->family == AF_INET && in->sa_family == AF_INET6) return HSP_UDX_EINVAL;
  memcpy(out, in, addr_len(in));
  return 0;
}

/* Reports v4-mapped sources as plain IPv4, as the reference does. */
static const struct sockaddr *addr_unmap(const struct sockaddr_storage *in,
                                         struct sockaddr_in *tmp) {
  const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)in;
  if (in->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
    memset(tmp, 0, sizeof(*tmp));
    tmp->sin_family = AF_INET;
    tmp->sin_port = v6->sin6_port;
    memcpy(&tmp->sin_addr, &v6->sin6_addr.s6_addr[12], 4);
    return (const struct sockaddr *)tmp;
  }
  return (const struct sockaddr *)in;
}

/* ---------- id table ---------- */

static hsp_udx_stream_t *lookup(hsp_udx_t *u, uint32_t id) {
  if (!u->buckets) return NULL;
  for (hsp_udx_stream_t *s = u->buckets[id & u->bucket_mask]; s; s = s->bucket_next) {
    if (s->local_id == id) return s;
  }
  return NULL;
}

static int table_grow(hsp_udx_t *u) {
  uint32_t ncap = u->buckets ? (u->bucket_mask + 1) * 2 : 64;
  hsp_udx_stream_t **nb = calloc(ncap, sizeof(*nb));
  if (!nb) return HSP_UDX_ENOMEM;
  if (u->buckets) {
    for (uint32_t i = 0; i <= u->bucket_mask; i++) {
      hsp_udx_stream_t *s = u->buckets[i];
      while (s) {
        hsp_udx_stream_t *next = s->bucket_next;
        s->bucket_next = nb[s->local_id & (ncap - 1)];
        nb[s->local_id & (ncap - 1)] = s;
        s = next;
      }
    }
    free(u->buckets);
  }
  u->buckets = nb;
  u->bucket_mask = ncap - 1;
  return 0;
}

static void table_remove(hsp_udx_t *u, hsp_udx_stream_t *s) {
  if (!s->registered) return;
  hsp_udx_stream_t **pp = &u->buckets[s->local_id & u->bucket_mask];
  while (*pp && *pp != s) pp = &(*pp)->bucket_next;
  if (*pp) *pp = s->bucket_next;
  s->bucket_next = NULL;
  s->registered = 0;
  u->stream_count--;
}

/* ---------- deferred flush ---------- */

static void on_prepare(uv_prepare_t *h) {
  hsp_udx_t *u = h->data;
  /* Streams flushed here may queue themselves again: only run the current batch. */
  hsp_udx_stream_t *list = u->flush_head;
  u->flush_head = NULL;
  while (list) {
    hsp_udx_stream_t *s = list;
    list = s->flush_next;
    s->flush_next = NULL;
    s->in_flush_list = 0;
    hsp_udx_socket_t *sock = s->socket;
    batch_begin(sock);
    hsp_udx__stream_flush(s);
    batch_end(sock);
  }
  if (!u->flush_head) {
    uv_prepare_stop(&u->prepare);
    u->prepare_active = 0;
  }
}

static void io_want_flush(hsp_udx_stream_t *s) {
  hsp_udx_t *u = s->udx;
  if (s->in_flush_list || s->closed) return;
  s->in_flush_list = 1;
  s->flush_next = u->flush_head;
  u->flush_head = s;
  if (!u->prepare_active) {
    uv_prepare_start(&u->prepare, on_prepare);
    u->prepare_active = 1;
  }
}

static void unlink_stream(hsp_udx_stream_t **head, hsp_udx_stream_t *s, int blocked) {
  hsp_udx_stream_t **pp = head;
  while (*pp && *pp != s) pp = blocked ? &(*pp)->blocked_next : &(*pp)->flush_next;
  if (*pp) *pp = blocked ? s->blocked_next : s->flush_next;
}

/* ---------- stream I/O vtable ---------- */

static void poll_update(hsp_udx_socket_t *sock);

/* Sends the queued datagrams with as few sendmmsg calls as possible. Returns 0 when the
 * queue is empty, HSP_UDX_EAGAIN if the kernel buffer is full (the rest stays queued and the
 * socket waits for writability). */
static int tx_flush(hsp_udx_socket_t *sock) {
  tx_batch_t *tx = sock->tx;
  if (!tx || tx->n == 0) return 0;
  /* Group runs of same-destination, same-size datagrams (the last may be shorter) into one
   * UDP GSO send: the kernel walks its stack once per group instead of once per datagram. */
  int ng = 0;
  for (int i = 0; i < tx->n;) {
    int j = i + 1;
    size_t seg = tx->iov[i].iov_len, total = seg;
    if (!sock->no_gso) {
      while (j < tx->n && tx->iov[j].iov_len <= seg && total + tx->iov[j].iov_len <= GSO_MAX_BYTES &&
             tx->msgs[j].msg_hdr.msg_namelen == tx->msgs[i].msg_hdr.msg_namelen &&
             memcmp(&tx->addrs[j], &tx->addrs[i], tx->msgs[i].msg_hdr.msg_namelen) == 0) {
        total += tx->iov[j].iov_len;
        j++;
        if (tx->iov[j - 1].iov_len < seg) break; /* a short one ends the run */
      }
    }
    struct msghdr *m = &tx->groups[ng].msg_hdr;
    *m = tx->msgs[i].msg_hdr;
    m->msg_iov = &tx->iov[i];
    m->msg_iovlen = (size_t)(j - i);
    if (j - i > 1) {
      /* CMSG_SPACE pads past the 2-byte payload; the kernel reads the padding too. */
      memset(tx->cmsg[ng], 0, sizeof(tx->cmsg[ng]));
      m->msg_control = tx->cmsg[ng];
      m->msg_controllen = sizeof(tx->cmsg[ng]);
      struct cmsghdr *c = CMSG_FIRSTHDR(m);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t gso = (uint16_t)seg;
      memcpy(CMSG_DATA(c), &gso, sizeof(gso));
    }
    tx->group_len[ng++] = j - i;
    i = j;
  }
  int gdone = 0, done = 0;
  while (gdone < ng) {
    int r = sendmmsg(sock->fd, tx->groups + gdone, (unsigned)(ng - gdone), 0);
    if (r > 0) {
      for (int k = 0; k < r; k++) done += tx->group_len[gdone + k];
      gdone += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) break;
    if (r < 0 && tx->group_len[gdone] > 1 && (errno == EINVAL || errno == EIO || errno == ENOPROTOOPT)) {
      /* No UDP GSO here: plain datagrams from now on. */
      sock->no_gso = 1;
      int left = tx->n - done;
      if (done > 0) {
        memmove(tx->bufs, tx->bufs + done, sizeof(tx->bufs[0]) * (size_t)left);
        memmove(tx->addrs, tx->addrs + done, sizeof(tx->addrs[0]) * (size_t)left);
        for (int i = 0; i < left; i++) {
          tx->iov[i].iov_len = tx->iov[i + done].iov_len;
          tx->msgs[i].msg_hdr.msg_namelen = tx->msgs[i + done].msg_hdr.msg_namelen;
        }
      }
      tx->n = left;
      return tx_flush(sock);
    }
    /* A datagram the kernel refuses (e.g. unreachable) is lost like any other. */
    sock->errno_value = errno;
    done += tx->group_len[gdone];
    gdone++;
  }
  int left = tx->n - done;
  if (left > 0 && done > 0) {
    memmove(tx->bufs, tx->bufs + done, sizeof(tx->bufs[0]) * (size_t)left);
    memmove(tx->addrs, tx->addrs + done, sizeof(tx->addrs[0]) * (size_t)left);
    for (int i = 0; i < left; i++) {
      tx->iov[i].iov_len = tx->iov[i + done].iov_len;
      tx->msgs[i].msg_hdr.msg_namelen = tx->msgs[i + done].msg_hdr.msg_namelen;
    }
  }
  tx->n = left;
  if (left) {
    sock->poll_events |= 0x100; /* force poll_update to re-evaluate */
    poll_update(sock);
    return HSP_UDX_EAGAIN;
  }
  return 0;
}

static void block_stream(hsp_udx_stream_t *s, hsp_udx_socket_t *sock) {
  if (!s->in_blocked_list) {
    s->in_blocked_list = 1;
    s->blocked_next = sock->blocked_head;
    sock->blocked_head = s;
    poll_update(sock);
  }
}

static int io_send(hsp_udx_stream_t *s, const uint8_t *buf, size_t len) {
  hsp_udx_socket_t *sock = s->socket;
  if (!sock || sock->fd < 0 || sock->closing) return HSP_UDX_ECLOSED;
  const struct sockaddr *to = (const struct sockaddr *)&s->remote_addr;
  tx_batch_t *tx = sock->tx;
  if (sock->batching && tx && len <= HSP_UDX_MAX_DATAGRAM) {
    if (tx->n == TX_BATCH && tx_flush(sock) < 0) {
      block_stream(s, sock);
      return HSP_UDX_EAGAIN;
    }
    int i = tx->n++;
    memcpy(tx->bufs[i], buf, len);
    tx->iov[i].iov_base = tx->bufs[i];
    tx->iov[i].iov_len = len;
    memcpy(&tx->addrs[i], to, addr_len(to));
    memset(&tx->msgs[i].msg_hdr, 0, sizeof(tx->msgs[i].msg_hdr));
    tx->msgs[i].msg_hdr.msg_name = &tx->addrs[i];
    tx->msgs[i].msg_hdr.msg_namelen = addr_len(to);
    tx->msgs[i].msg_hdr.msg_iov = &tx->iov[i];
    tx->msgs[i].msg_hdr.msg_iovlen = 1;
    return 0;
  }
  if (tx && tx->n) {
    /* keep datagram order behind what is already queued */
    block_stream(s, sock);
    return HSP_UDX_EAGAIN;
  }
  for (;;) {
    ssize_t r = sendto(sock->fd, buf, len, 0, to, addr_len(to));
    if (r >= 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      block_stream(s, sock);
      return HSP_UDX_EAGAIN;
    }
    /* Anything else (e.g. unreachable) behaves like loss: RTO/keepalive deal with it. */
    sock->errno_value = errno;
    return 0;
  }
}

/* Brackets a callback from the loop: datagrams sent inside are batched. */
static void batch_begin(hsp_udx_socket_t *sock) {
  if (sock) sock->batching++;
}

static void send_deferred_acks(hsp_udx_socket_t *sock) {
  while (sock->ack_head) {
    hsp_udx_stream_t *s = sock->ack_head;
    sock->ack_head = s->ack_next;
    s->ack_next = NULL;
    hsp_udx__stream_send_deferred_ack(s);
  }
}

static void batch_end(hsp_udx_socket_t *sock) {
  if (!sock) return;
  if (--sock->batching == 0 && !sock->closing && sock->fd >= 0) tx_flush(sock);
}

static void io_defer_ack(hsp_udx_stream_t *s) {
  hsp_udx_socket_t *sock = s->socket;
  s->ack_next = sock->ack_head;
  sock->ack_head = s;
}

static uint64_t io_now(hsp_udx_stream_t *s) {
  (void)s;
  return uv_hrtime() / 1000;
}

static void on_timer(uv_timer_t *t) {
  hsp_udx_stream_t *s = t->data;
  hsp_udx_socket_t *sock = s->socket;
  s->armed_deadline = 0;
  batch_begin(sock);
  hsp_udx__stream_timeout(s);
  batch_end(sock);
}

static void io_arm(hsp_udx_stream_t *s, uint64_t deadline) {
  if (deadline == s->armed_deadline || s->finalised) return;
  s->armed_deadline = deadline;
  if (!deadline) {
    uv_timer_stop(&s->timer);
    return;
  }
  uint64_t now = uv_hrtime() / 1000;
  uint64_t ms = deadline > now ? (deadline - now + 999) / 1000 : 0;
  uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void on_stream_timer_closed(uv_handle_t *h) {
  hsp_udx_stream_t *s = h->data;
  hsp_udx__stream_release(s);
  if (s->close_cb) s->close_cb(s, s->close_status);
}

static void io_closed(hsp_udx_stream_t *s) {
  hsp_udx_t *u = s->udx;
  table_remove(u, s);
  /* Streams relaying into this one would forward into freed memory: close them too. */
  for (uint32_t i = 0; u->buckets && i <= u->bucket_mask; i++) {
    for (hsp_udx_stream_t *r = u->buckets[i]; r;) {
      hsp_udx_stream_t *next = r->bucket_next;
      if (r->relay_to == s && !r->closed) hsp_udx__stream_close(r, HSP_UDX_ECONNRESET);
      r = next;
    }
  }
  if (s->in_flush_list) {
    unlink_stream(&u->flush_head, s, 0);
    s->in_flush_list = 0;
  }
  if (s->in_blocked_list && s->socket) {
    unlink_stream(&s->socket->blocked_head, s, 1);
    s->in_blocked_list = 0;
  }
  if (s->socket) {
    for (hsp_udx_stream_t **pp = &s->socket->ack_head; *pp; pp = &(*pp)->ack_next) {
      if (*pp == s) {
        *pp = s->ack_next;
        break;
      }
    }
    s->ack_next = NULL;
  }
  if (s->close_status == 0 && s->remote_ended && s->socket && !s->socket->closing) {
    linger_t *l = malloc(sizeof(*l));
    if (l) {
      l->socket = s->socket;
      l->addr = s->remote_addr;
      l->local_id = s->local_id;
      l->remote_id = s->remote_id;
      l->seq = s->seq;
      l->ack = s->ack;
      l->rwnd = s->rwnd_max;
      l->expires = uv_hrtime() / 1000 + LINGER_US;
      l->next = u->lingers;
      u->lingers = l;
    }
  }
  s->finalised = 1;
  uv_close((uv_handle_t *)&s->timer, on_stream_timer_closed);
}

static const hsp_udx_io_t uv_stream_io = {
    .send = io_send, .now = io_now, .arm = io_arm, .want_flush = io_want_flush,
    .closed = io_closed, .defer_ack = io_defer_ack};

/* ---------- instance ---------- */

int hsp_udx_init(uv_loop_t *loop, hsp_udx_t *udx) {
  if (!loop || !udx) return HSP_UDX_EINVAL;
  memset(udx, 0, sizeof(*udx));
  udx->loop = loop;
  if (table_grow(udx) < 0) return HSP_UDX_ENOMEM;
  uv_prepare_init(loop, &udx->prepare);
  udx->prepare.data = udx;
  return 0;
}

static void on_prepare_closed(uv_handle_t *h) {
  hsp_udx_t *udx = h->data;
  if (udx->deinit_cb) udx->deinit_cb(udx);
}

void hsp_udx_deinit_cb(hsp_udx_t *udx, void (*cb)(hsp_udx_t *udx)) {
  linger_drop(udx, NULL);
  free(udx->buckets);
  udx->buckets = NULL;
  hsp_udx__pool_free(udx);
  /* The loop must run once more to finish closing this handle before udx is freed. */
  udx->deinit_cb = cb;
  uv_close((uv_handle_t *)&udx->prepare, on_prepare_closed);
}

void hsp_udx_deinit(hsp_udx_t *udx) { hsp_udx_deinit_cb(udx, NULL); }

/* ---------- socket ---------- */

int hsp_udx_socket_init(hsp_udx_t *udx, hsp_udx_socket_t *sock) {
  if (!udx || !sock) return HSP_UDX_EINVAL;
  void *data = sock->data;
  memset(sock, 0, sizeof(*sock));
  sock->data = data;
  sock->udx = udx;
  sock->fd = -1;
  return 0;
}

static void poll_update(hsp_udx_socket_t *sock);

static void deliver_raw(hsp_udx_socket_t *sock, const uint8_t *buf, size_t len,
                        const struct sockaddr *from) {
  if (sock->recv_cb) sock->recv_cb(sock, buf, len, from);
}

static void relay_packet(hsp_udx_stream_t *s, const hsp_udx_header_t *h, const uint8_t *buf,
                         size_t len) {
  hsp_udx_stream_t *dest = s->relay_to;
  if (!dest->closed && dest->connected) {
    uint8_t tmp[HSP_UDX_MAX_DATAGRAM];
    memcpy(tmp, buf, len);
    hsp_udx_write_u32(tmp + 4, dest->remote_id);
    dest->io->send(dest, tmp, len);
  }
  if (h->type & HSP_UDX_TYPE_DESTROY) hsp_udx__stream_close(s, HSP_UDX_ECONNRESET);
}

static void dispatch(hsp_udx_socket_t *sock, const uint8_t *buf, size_t len,
                     const struct sockaddr_storage *from_ss) {
  struct sockaddr_in tmp;
  const struct sockaddr *from = addr_unmap(from_ss, &tmp);
  hsp_udx_header_t h;
  if (hsp_udx_header_decode(buf, len, &h) < 0) {
    deliver_raw(sock, buf, len, from);
    return;
  }
  hsp_udx_stream_t *s = lookup(sock->udx, h.id);
  if (!s || s->closed) {
    if (sock->udx->lingers && linger_answer(sock, &h)) return;
    deliver_raw(sock, buf, len, from);
    return;
  }
  if (s->socket != sock && s->firewall_cb && s->firewall_cb(s, sock, from)) return;
  if (s->relay_to) {
    relay_packet(s, &h, buf, len);
    return;
  }
  size_t skip = HSP_UDX_HEADER_SIZE + (size_t)h.data_offset;
  if (skip > len) return;
  hsp_udx__stream_recv(s, &h, buf + skip, len - skip);
}

/* Returns 1 if the packet belonged to a lingering closed stream (and was answered). */
static int linger_answer(hsp_udx_socket_t *sock, const hsp_udx_header_t *h) {
  hsp_udx_t *u = sock->udx;
  uint64_t now = uv_hrtime() / 1000;
  for (linger_t **pp = (linger_t **)&u->lingers; *pp;) {
    linger_t *l = *pp;
    if (l->expires <= now) {
      *pp = l->next;
      free(l);
      continue;
    }
    if (l->socket == sock && l->local_id == h->id) {
      if (h->type & (HSP_UDX_TYPE_DATA | HSP_UDX_TYPE_END)) {
        uint8_t b[HSP_UDX_HEADER_SIZE];
        hsp_udx_header_t a = {.id = l->remote_id, .rwnd = l->rwnd, .seq = l->seq, .ack = l->ack};
        hsp_udx_header_encode(b, &a);
        const struct sockaddr *to = (const struct sockaddr *)&l->addr;
        if (sendto(sock->fd, b, sizeof(b), 0, to, addr_len(to)) < 0) sock->errno_value = errno;
        return 1;
      }
      return 0;
    }
    pp = &l->next;
  }
  return 0;
}

static void linger_drop(hsp_udx_t *u, hsp_udx_socket_t *sock) {
  for (linger_t **pp = (linger_t **)&u->lingers; *pp;) {
    linger_t *l = *pp;
    if (!sock || l->socket == sock) {
      *pp = l->next;
      free(l);
    } else {
      pp = &l->next;
    }
  }
}

static void on_readable(hsp_udx_socket_t *sock) {
  rx_batch_t *rx = sock->rx;
  for (int round = 0; round < RX_ROUNDS && !sock->closing; round++) {
    for (int i = 0; i < RX_BATCH; i++) {
      rx->iov[i].iov_base = rx->bufs[i];
      rx->iov[i].iov_len = RX_SLOT;
      memset(&rx->msgs[i].msg_hdr, 0, sizeof(rx->msgs[i].msg_hdr));
      rx->msgs[i].msg_hdr.msg_control = rx->cmsg[i];
      rx->msgs[i].msg_hdr.msg_controllen = sizeof(rx->cmsg[i]);
      rx->msgs[i].msg_hdr.msg_iov = &rx->iov[i];
      rx->msgs[i].msg_hdr.msg_iovlen = 1;
      rx->msgs[i].msg_hdr.msg_name = &rx->addrs[i];
      rx->msgs[i].msg_hdr.msg_namelen = sizeof(rx->addrs[i]);
    }
    int n = recvmmsg(sock->fd, rx->msgs, RX_BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    batch_begin(sock);
    for (int i = 0; i < n && !sock->closing; i++) {
      /* Truncated datagrams (bigger than our buffer) are not valid UDX packets. */
      if (rx->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
      size_t len = rx->msgs[i].msg_len;
      size_t seg = gro_segment(&rx->msgs[i].msg_hdr);
      if (!seg) seg = len;
      if (seg > HSP_UDX_MAX_DATAGRAM) continue;
      for (size_t off = 0; off == 0 || (off < len && !sock->closing); off += seg ? seg : 1) {
        dispatch(sock, rx->bufs[i] + off, len - off < seg ? len - off : seg, &rx->addrs[i]);
      }
    }
    if (!sock->closing) send_deferred_acks(sock);
    batch_end(sock);
    if (n < RX_BATCH) return;
  }
}

static void on_writable(hsp_udx_socket_t *sock) {
  if (tx_flush(sock) < 0) return;
  hsp_udx_stream_t *list = sock->blocked_head;
  sock->blocked_head = NULL;
  poll_update(sock);
  while (list) {
    hsp_udx_stream_t *s = list;
    list = s->blocked_next;
    s->blocked_next = NULL;
    s->in_blocked_list = 0;
    batch_begin(sock);
    hsp_udx__stream_flush(s);
    batch_end(sock);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  hsp_udx_socket_t *sock = h->data;
  if (status < 0) {
    sock->errno_value = -status;
    return;
  }
  if (events & UV_READABLE) on_readable(sock);
  if ((events & UV_WRITABLE) && !sock->closing) on_writable(sock);
}

static void poll_update(hsp_udx_socket_t *sock) {
  if (sock->closing || sock->fd < 0) return;
  tx_batch_t *tx = sock->tx;
  int ev = UV_READABLE | (sock->blocked_head || (tx && tx->n && !sock->batching) ? UV_WRITABLE : 0);
  if (ev != sock->poll_events) {
    sock->poll_events = ev;
    uv_poll_start(&sock->poll, ev, on_poll);
  }
}

int hsp_udx_socket_bind(hsp_udx_socket_t *sock, const struct sockaddr *addr) {
  if (!sock || !addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
    return HSP_UDX_EINVAL;
  }
  if (sock->fd >= 0 || sock->closing) return HSP_UDX_EINVAL;
  int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    sock->errno_value = errno;
    return HSP_UDX_ESOCKET;
  }
  int zero = 0;
  if (addr->sa_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  /* Bigger buffers than the reference's defaults: bursts of a large window then fit. */
  int rcv = 4 * 1024 * 1024, snd = 2 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
  int one = 1; /* best effort: without it every datagram arrives on its own */
  setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
  if (bind(fd, addr, addr_len(addr)) < 0) {
    sock->errno_value = errno;
    close(fd);
    return HSP_UDX_ESOCKET;
  }
  sock->rx = malloc(sizeof(rx_batch_t));
  sock->tx = malloc(sizeof(tx_batch_t));
  if (!sock->rx || !sock->tx) {
    free(sock->rx);
    free(sock->tx);
    sock->rx = sock->tx = NULL;
    close(fd);
    return HSP_UDX_ENOMEM;
  }
  ((tx_batch_t *)sock->tx)->n = 0;
  if (uv_poll_init(sock->udx->loop, &sock->poll, fd) < 0) {
    free(sock->rx);
    free(sock->tx);
    sock->rx = sock->tx = NULL;
    close(fd);
    return HSP_UDX_ESOCKET;
  }
  sock->poll.data = sock;
  sock->fd = fd;
  sock->family = addr->sa_family;
  sock->udx->sockets++;
  poll_update(sock);
  return 0;
}

int hsp_udx_socket_getsockname(hsp_udx_socket_t *sock, struct sockaddr_storage *out) {
  if (!sock || !out || sock->fd < 0) return HSP_UDX_EINVAL;
  socklen_t len = sizeof(*out);
  if (getsockname(sock->fd, (struct sockaddr *)out, &len) < 0) {
    sock->errno_value = errno;
    return HSP_UDX_ESOCKET;
  }
  return 0;
}

int hsp_udx_socket_recv_start(hsp_udx_socket_t *sock, hsp_udx_socket_recv_cb cb) {
  if (!sock || !cb) return HSP_UDX_EINVAL;
  sock->recv_cb = cb;
  return 0;
}

int hsp_udx_socket_recv_stop(hsp_udx_socket_t *sock) {
  if (!sock) return HSP_UDX_EINVAL;
  sock->recv_cb = NULL;
  return 0;
}

int hsp_udx_socket_send(hsp_udx_socket_t *sock, const uint8_t *buf, size_t len,
                        const struct sockaddr *to) {
  if (!sock || (len && !buf) || !to) return HSP_UDX_EINVAL;
  if (sock->fd < 0 || sock->closing) return HSP_UDX_ECLOSED;
  struct sockaddr_storage dst;
  if (addr_for_socket(sock, to, &dst) < 0) return HSP_UDX_EINVAL;
  for (;;) {
    ssize_t r = sendto(sock->fd, buf, len, 0, (struct sockaddr *)&dst,
                       addr_len((struct sockaddr *)&dst));
    if (r >= 0) return 0;
    if (errno == EINTR) continue;
    sock->errno_value = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return HSP_UDX_EAGAIN;
    if (errno == EMSGSIZE) return HSP_UDX_EMSGSIZE;
    return HSP_UDX_ESOCKET;
  }
}

static void on_poll_closed(uv_handle_t *h) {
  hsp_udx_socket_t *sock = h->data;
  close(sock->fd);
  sock->fd = -1;
  free(sock->rx);
  free(sock->tx);
  sock->rx = sock->tx = NULL;
  sock->udx->sockets--;
  if (sock->close_cb) sock->close_cb(sock);
}

int hsp_udx_socket_close(hsp_udx_socket_t *sock, hsp_udx_socket_close_cb cb) {
  if (!sock || sock->closing) return HSP_UDX_EINVAL;
  hsp_udx_t *u = sock->udx;
  /* Streams on this socket cannot work without it. */
  for (uint32_t i = 0; u->buckets && i <= u->bucket_mask; i++) {
    hsp_udx_stream_t *s = u->buckets[i];
    while (s) {
      hsp_udx_stream_t *next = s->bucket_next;
      if (s->socket == sock && !s->closed) {
        if (s->connected && !s->relay_to) {
          uint8_t d[HSP_UDX_HEADER_SIZE];
          hsp_udx_header_t hd = {.type = HSP_UDX_TYPE_DESTROY, .id = s->remote_id,
                                 .rwnd = s->rwnd_max, .seq = s->seq, .ack = s->ack};
          hsp_udx_header_encode(d, &hd);
          io_send(s, d, sizeof(d));
        }
        hsp_udx__stream_close(s, HSP_UDX_ECANCELED);
      }
      s = next;
    }
  }
  linger_drop(u, sock);
  if (sock->fd >= 0) tx_flush(sock);
  sock->ack_head = NULL;
  sock->closing = 1;
  sock->close_cb = cb;
  sock->blocked_head = NULL;
  if (sock->fd < 0) {
    if (cb) cb(sock);
    return 0;
  }
  uv_poll_stop(&sock->poll);
  uv_close((uv_handle_t *)&sock->poll, on_poll_closed);
  return 0;
}

/* ---------- streams ---------- */

int hsp_udx_stream_init(hsp_udx_t *udx, hsp_udx_stream_t *s, uint32_t local_id,
                        hsp_udx_stream_close_cb close_cb) {
  if (!udx || !s) return HSP_UDX_EINVAL;
  if (lookup(udx, local_id)) return HSP_UDX_EIDINUSE;
  if (udx->stream_count + 1 > udx->bucket_mask && table_grow(udx) < 0) return HSP_UDX_ENOMEM;
  void *data = s->data;
  hsp_udx__stream_core_init(s, udx, local_id, &uv_stream_io, NULL);
  s->data = data;
  s->close_cb = close_cb;
  uv_timer_init(udx->loop, &s->timer);
  s->timer.data = s;
  s->bucket_next = udx->buckets[local_id & udx->bucket_mask];
  udx->buckets[local_id & udx->bucket_mask] = s;
  s->registered = 1;
  udx->stream_count++;
  return 0;
}

static uint32_t payload_for(const hsp_udx_socket_t *sock, const struct sockaddr *addr) {
  /* Like libudx: IPv4 peers on a dual-stack socket count IPv6 header overhead. */
  return sock->family == AF_INET && addr->sa_family == AF_INET ? HSP_UDX_PAYLOAD_IPV4
                                                                : HSP_UDX_PAYLOAD_IPV6;
}

int hsp_udx_stream_connect(hsp_udx_stream_t *s, hsp_udx_socket_t *sock, uint32_t remote_id,
                           const struct sockaddr *addr) {
  if (!s || !sock || !addr) return HSP_UDX_EINVAL;
  if (s->closed) return HSP_UDX_ECLOSED;
  if (s->connected || sock->fd < 0 || sock->closing) return HSP_UDX_EINVAL;
  if (addr_for_socket(sock, addr, &s->remote_addr) < 0) return HSP_UDX_EINVAL;
  s->socket = sock;
  /* No route MTU lookup: search up to 1500 like libudx does on loopback and Ethernet; a
   * smaller path loses the probes and the search stops at the last size that worked. */
  hsp_udx__stream_mtu_reset(s, HSP_UDX_MTU_BASE - payload_for(sock, addr),
                            s->mtu_disabled ? 0 : HSP_UDX_MTU_MAX);
  hsp_udx__stream_core_connect(s, remote_id);
  return 0;
}

int hsp_udx_stream_change_remote(hsp_udx_stream_t *s, hsp_udx_socket_t *sock, uint32_t remote_id,
                                 const struct sockaddr *addr,
                                 hsp_udx_stream_remote_changed_cb cb) {
  if (!s || !sock || !addr) return HSP_UDX_EINVAL;
  if (s->closed) return HSP_UDX_ECLOSED;
  if (!s->connected || sock->fd < 0 || sock->closing) return HSP_UDX_EINVAL;
  struct sockaddr_storage dst;
  if (addr_for_socket(sock, addr, &dst) < 0) return HSP_UDX_EINVAL;
  if (s->in_blocked_list) {
    unlink_stream(&s->socket->blocked_head, s, 1);
    s->in_blocked_list = 0;
  }
  s->socket = sock;
  s->remote_addr = dst;
  s->remote_id = remote_id;
  /* A new path: start the MTU search again from the base (packets already built keep
   * their size). */
  hsp_udx__stream_mtu_reset(s, HSP_UDX_MTU_BASE - payload_for(sock, addr),
                            s->mtu_disabled ? 0 : HSP_UDX_MTU_MAX);
  s->remote_changed_cb = cb;
  io_want_flush(s);
  if (s->remote_acked == s->seq) return 1;
  s->remote_change_pending = 1;
  s->remote_change_seq = s->seq;
  return 0;
}

int hsp_udx_stream_relay_to(hsp_udx_stream_t *s, hsp_udx_stream_t *dest) {
  if (!s || !dest || s == dest) return HSP_UDX_EINVAL;
  if (s->closed || dest->closed) return HSP_UDX_ECLOSED;
  s->relay_to = dest;
  return 0;
}
