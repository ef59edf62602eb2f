/*
 * Deterministic simulation of two stream state machines over an in-memory link with a
 * bottleneck queue, random loss, reordering and a simulated microsecond clock. No sockets,
 * no wall clock: every run is identical.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

/* ---------- simulated world ---------- */

typedef struct {
  uint64_t at;
  int dst;
  uint16_t len;
  uint8_t buf[HSP_UDX_MAX_DATAGRAM];
} sim_pkt_t;

typedef struct {
  uint64_t busy_until;
} sim_dir_t;

static struct {
  uint64_t now;
  uint64_t rng;
  sim_pkt_t **heap;
  size_t heap_len, heap_cap;
  sim_dir_t dir[2];
  /* link parameters */
  double loss;        /* probability per packet */
  double reorder;     /* probability of extra delay */
  uint64_t delay_us;  /* one-way propagation */
  uint64_t jitter_us; /* extra delay of reordered packets, uniform */
  uint64_t bytes_per_ms;
  uint64_t queue_us; /* tail drop when the bottleneck queue exceeds this */
  int blackhole[2];  /* drop everything towards node i */
  uint64_t dropped, delivered, unknown;
} sim;

typedef struct node {
  hsp_udx_stream_t s;
  int idx;
  uint64_t deadline;
  int flush;
  int closed_io, close_cb_done, status;
  uint64_t closed_at;
  /* application */
  uint64_t rx_bytes, rx_bad;
  uint64_t rx_eof;
  uint64_t tx_total, tx_queued_upto;
  int end_after_eof;
  int tx_end_done;
  hsp_udx_write_t wreqs[64];
  uint8_t *wbufs[64];
  int wbusy[64];
  int write_err;
  int msgs;
} node_t;

static node_t nodes[2];
static hsp_udx_t pool;

static uint64_t rnd(void) {
  sim.rng ^= sim.rng << 13;
  sim.rng ^= sim.rng >> 7;
  sim.rng ^= sim.rng << 17;
  return sim.rng;
}
static double rndf(void) { return (double)(rnd() >> 11) / (double)(1ull << 53); }

static void heap_push(sim_pkt_t *p) {
  if (sim.heap_len == sim.heap_cap) {
    sim.heap_cap = sim.heap_cap ? sim.heap_cap * 2 : 1024;
    sim.heap = realloc(sim.heap, sim.heap_cap * sizeof(*sim.heap));
  }
  size_t i = sim.heap_len++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (sim.heap[parent]->at <= p->at) break;
    sim.heap[i] = sim.heap[parent];
    i = parent;
  }
  sim.heap[i] = p;
}

static sim_pkt_t *heap_pop(void) {
  sim_pkt_t *top = sim.heap[0];
  sim_pkt_t *last = sim.heap[--sim.heap_len];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= sim.heap_len) break;
    if (c + 1 < sim.heap_len && sim.heap[c + 1]->at < sim.heap[c]->at) c++;
    if (last->at <= sim.heap[c]->at) break;
    sim.heap[i] = sim.heap[c];
    i = c;
  }
  if (sim.heap_len) sim.heap[i] = last;
  return top;
}

/* ---------- io vtable ---------- */

static int sim_send(hsp_udx_stream_t *s, const uint8_t *buf, size_t len) {
  node_t *n = (node_t *)s;
  int dst = 1 - n->idx;
  if (sim.blackhole[dst] || rndf() < sim.loss) {
    sim.dropped++;
    return 0;
  }
  sim_dir_t *d = &sim.dir[n->idx];
  uint64_t start = d->busy_until > sim.now ? d->busy_until : sim.now;
  if (start - sim.now > sim.queue_us) {
    sim.dropped++;
    return 0;
  }
  d->busy_until = start + (len * 1000) / sim.bytes_per_ms + 1;
  sim_pkt_t *p = malloc(sizeof(*p));
  p->at = d->busy_until + sim.delay_us;
  if (rndf() < sim.reorder) p->at += rnd() % (sim.jitter_us + 1);
  p->dst = dst;
  p->len = (uint16_t)len;
  memcpy(p->buf, buf, len);
  heap_push(p);
  return 0;
}
static uint64_t sim_now(hsp_udx_stream_t *s) {
  (void)s;
  return sim.now;
}
static void sim_arm(hsp_udx_stream_t *s, uint64_t d) { ((node_t *)s)->deadline = d; }
static void sim_want_flush(hsp_udx_stream_t *s) { ((node_t *)s)->flush = 1; }
static void sim_closed(hsp_udx_stream_t *s) {
  node_t *n = (node_t *)s;
  n->closed_io = 1;
  n->status = s->close_status;
  n->closed_at = sim.now;
}
static const hsp_udx_io_t sim_io = {sim_send, sim_now, sim_arm, sim_want_flush, sim_closed, NULL};

/* ---------- application ---------- */

static uint8_t pattern(uint64_t off) { return (uint8_t)((off * 2654435761u) >> 13); }

static void on_read(hsp_udx_stream_t *s, const uint8_t *buf, ssize_t len);
static void pump(node_t *n);

static void on_write(hsp_udx_write_t *req, int status) {
  node_t *n = req->data;
  int i = (int)(req - n->wreqs);
  n->wbusy[i] = 0;
  if (status < 0) n->write_err = status;
  else if (!n->s.closed) pump(n);
}

#define CHUNK 65536
/* Keeps up to 16 chunks queued; ends the stream after tx_total bytes. */
static void pump(node_t *n) {
  while (n->tx_queued_upto < n->tx_total) {
    int slot = -1;
    for (int i = 0; i < 16; i++) {
      if (!n->wbusy[i]) {
        slot = i;
        break;
      }
    }
    if (slot < 0) return;
    size_t len = n->tx_total - n->tx_queued_upto;
    if (len > CHUNK) len = CHUNK;
    if (!n->wbufs[slot]) n->wbufs[slot] = malloc(CHUNK);
    for (size_t k = 0; k < len; k++) n->wbufs[slot][k] = pattern(n->tx_queued_upto + k);
    n->wbusy[slot] = 1;
    n->wreqs[slot].data = n;
    n->tx_queued_upto += len;
    int last = n->tx_queued_upto == n->tx_total;
    int r = last ? hsp_udx_stream_write_end(&n->wreqs[slot], &n->s, n->wbufs[slot], len, on_write)
                 : hsp_udx_stream_write(&n->wreqs[slot], &n->s, n->wbufs[slot], len, on_write);
    CHECK_EQ_INT(r, 0);
    if (last) n->tx_end_done = 1;
  }
}

static void end_now(node_t *n) {
  n->wbusy[63] = 1;
  n->wreqs[63].data = n;
  n->tx_end_done = 1;
  CHECK_EQ_INT(hsp_udx_stream_write_end(&n->wreqs[63], &n->s, NULL, 0, on_write), 0);
}

static void on_read(hsp_udx_stream_t *s, const uint8_t *buf, ssize_t len) {
  node_t *n = (node_t *)s;
  if (len == HSP_UDX_EOF) {
    n->rx_eof++;
    if (n->end_after_eof && !n->tx_end_done) end_now(n);
    return;
  }
  for (ssize_t i = 0; i < len; i++) {
    if (buf[i] != pattern(n->rx_bytes + (uint64_t)i)) n->rx_bad++;
  }
  n->rx_bytes += (uint64_t)len;
}

static void on_message(hsp_udx_stream_t *s, const uint8_t *buf, size_t len) {
  node_t *n = (node_t *)s;
  if (len == 3 && memcmp(buf, "msg", 3) == 0) n->msgs++;
}

/* ---------- driver ---------- */

static void setup(double loss, double reorder, uint64_t seed) {
  for (int i = 0; i < 2; i++) {
    for (int k = 0; k < 64; k++) free(nodes[i].wbufs[k]);
  }
  while (sim.heap_len) free(heap_pop());
  free(sim.heap);
  memset(&sim, 0, sizeof(sim));
  memset(nodes, 0, sizeof(nodes));
  sim.rng = seed;
  sim.now = 1000000;
  sim.loss = loss;
  sim.reorder = reorder;
  sim.delay_us = 5000;
  sim.jitter_us = 4000;
  sim.bytes_per_ms = 50000; /* 50 MB/s bottleneck */
  sim.queue_us = 20000;     /* 20 ms of queue */
  for (int i = 0; i < 2; i++) {
    node_t *n = &nodes[i];
    hsp_udx__stream_core_init(&n->s, &pool, (uint32_t)(i + 1), &sim_io, NULL);
    n->idx = i;
    n->s.max_payload = HSP_UDX_PAYLOAD_IPV4;
    hsp_udx_stream_read_start(&n->s, on_read);
    hsp_udx_stream_set_message_cb(&n->s, on_message);
  }
  hsp_udx__stream_core_connect(&nodes[0].s, 2);
  hsp_udx__stream_core_connect(&nodes[1].s, 1);
}

static void deliver(sim_pkt_t *p) {
  node_t *n = &nodes[p->dst];
  hsp_udx_header_t h;
  if (hsp_udx_header_decode(p->buf, p->len, &h) < 0 || h.id != n->s.local_id) {
    sim.unknown++;
    return;
  }
  if (n->s.closed) {
    /* What socket.c's linger does: re-ACK the peer's END retransmits after a clean close. */
    sim.unknown++;
    if (n->status == 0 && n->s.remote_ended && (h.type & (HSP_UDX_TYPE_DATA | HSP_UDX_TYPE_END))) {
      uint8_t ack[HSP_UDX_HEADER_SIZE];
      hsp_udx_header_t a = {.type = 0, .id = n->s.remote_id, .rwnd = n->s.rwnd_max,
                            .seq = n->s.seq, .ack = n->s.ack};
      hsp_udx_header_encode(ack, &a);
      sim_send(&n->s, ack, sizeof(ack));
    }
    return;
  }
  sim.delivered++;
  size_t skip = HSP_UDX_HEADER_SIZE + h.data_offset;
  if (skip > p->len) return;
  hsp_udx__stream_recv(&n->s, &h, p->buf + skip, p->len - skip);
}

/* Runs until both streams closed or the simulated time limit. Returns 0 if it stalled. */
static int run(uint64_t limit_us, int (*done)(void)) {
  uint64_t end = sim.now + limit_us;
  while (sim.now < end) {
    for (int i = 0; i < 2; i++) {
      if (nodes[i].flush && !nodes[i].s.closed) {
        nodes[i].flush = 0;
        hsp_udx__stream_flush(&nodes[i].s);
      }
    }
    if (done && done()) return 1;
    uint64_t next = 0;
    if (sim.heap_len) next = sim.heap[0]->at;
    for (int i = 0; i < 2; i++) {
      uint64_t d = nodes[i].s.closed ? 0 : nodes[i].deadline;
      if (d && (!next || d < next)) next = d;
    }
    if (!next) return 0;
    if (next > sim.now) sim.now = next;
    while (sim.heap_len && sim.heap[0]->at <= sim.now) {
      sim_pkt_t *p = heap_pop();
      deliver(p);
      free(p);
    }
    for (int i = 0; i < 2; i++) {
      node_t *n = &nodes[i];
      if (!n->s.closed && n->deadline && n->deadline <= sim.now) {
        n->deadline = 0;
        hsp_udx__stream_timeout(&n->s);
      }
    }
  }
  return done ? done() : 0;
}

static int both_closed(void) { return nodes[0].closed_io && nodes[1].closed_io; }

static void teardown(void) {
  for (int i = 0; i < 2; i++) {
    if (!nodes[i].s.closed) hsp_udx__stream_close(&nodes[i].s, 0);
    hsp_udx__stream_release(&nodes[i].s);
  }
}

/* ---------- scenarios ---------- */

static void test_bulk(double loss, double reorder, uint64_t bytes, const char *name) {
  setup(loss, reorder, 0x9e3779b97f4a7c15ull);
  nodes[0].tx_total = bytes;
  nodes[1].end_after_eof = 1;
  pump(&nodes[0]);
  uint64_t t0 = sim.now;
  CHECK(run(600ull * 1000000, both_closed));
  CHECK_EQ_INT(nodes[1].rx_bytes, bytes);
  CHECK_EQ_INT(nodes[1].rx_bad, 0);
  CHECK_EQ_INT(nodes[1].rx_eof, 1);
  CHECK_EQ_INT(nodes[0].rx_eof, 1);
  CHECK_EQ_INT(nodes[0].status, 0);
  CHECK_EQ_INT(nodes[1].status, 0);
  CHECK_EQ_INT(nodes[0].write_err, 0);
  printf("%s: %llu bytes in %.2f s simulated, %.1f MB/s, retransmits %llu, rto %llu, "
         "recoveries %llu, dropped %llu\n",
         name, (unsigned long long)bytes, (double)(sim.now - t0) / 1e6,
         (double)bytes / (double)(sim.now - t0), (unsigned long long)nodes[0].s.stat_retransmits,
         (unsigned long long)nodes[0].s.stat_rto_count,
         (unsigned long long)nodes[0].s.stat_fast_recoveries, (unsigned long long)sim.dropped);
  teardown();
}

static void test_empty_and_hello(void) {
  /* 0 bytes: end only; the peer ends on EOF; both close cleanly. */
  setup(0, 0, 7);
  nodes[1].end_after_eof = 1;
  end_now(&nodes[0]);
  CHECK(run(10ull * 1000000, both_closed));
  CHECK_EQ_INT(nodes[1].rx_eof, 1);
  CHECK_EQ_INT(nodes[1].rx_bytes, 0);
  CHECK_EQ_INT(nodes[0].status, 0);
  CHECK_EQ_INT(nodes[1].status, 0);
  /* exactly: END, ACK, END, ACK — no retransmission */
  CHECK_EQ_INT(nodes[0].s.stat_retransmits, 0);
  teardown();

  /* 1 byte */
  setup(0, 0, 8);
  nodes[0].tx_total = 1;
  nodes[1].end_after_eof = 1;
  pump(&nodes[0]);
  CHECK(run(10ull * 1000000, both_closed));
  CHECK_EQ_INT(nodes[1].rx_bytes, 1);
  CHECK_EQ_INT(nodes[1].rx_bad, 0);
  teardown();
}

static int b_has_eof(void) { return nodes[1].rx_eof == 1; }

static void test_half_close(void) {
  /* A sends 300 kB and ends; B keeps sending 300 kB afterwards; A must still read it. */
  setup(0.02, 0.05, 11);
  nodes[0].tx_total = 300000;
  pump(&nodes[0]);
  CHECK(run(60ull * 1000000, b_has_eof));
  CHECK(!nodes[0].closed_io);
  CHECK_EQ_INT(nodes[1].rx_bytes, 300000);
  nodes[1].tx_total = 300000;
  pump(&nodes[1]);
  CHECK(run(60ull * 1000000, both_closed));
  CHECK_EQ_INT(nodes[0].rx_bytes, 300000);
  CHECK_EQ_INT(nodes[0].rx_bad, 0);
  CHECK_EQ_INT(nodes[0].rx_eof, 1);
  CHECK_EQ_INT(nodes[0].status, 0);
  CHECK_EQ_INT(nodes[1].status, 0);
  teardown();
}

static int b_got_1mb(void) { return nodes[1].rx_bytes >= 1000000; }

static void test_destroy(void) {
  setup(0, 0, 12);
  nodes[0].tx_total = 50000000;
  pump(&nodes[0]);
  CHECK(run(60ull * 1000000, b_got_1mb));
  CHECK_EQ_INT(hsp_udx_stream_destroy(&nodes[0].s), 0);
  CHECK(nodes[0].closed_io);
  CHECK_EQ_INT(nodes[0].status, 0);
  CHECK_EQ_INT(nodes[0].write_err, HSP_UDX_ECANCELED);
  CHECK(run(10ull * 1000000, both_closed));
  CHECK_EQ_INT(nodes[1].status, HSP_UDX_ECONNRESET);
  CHECK_EQ_INT(hsp_udx_stream_destroy(&nodes[0].s), HSP_UDX_ECLOSED);
  teardown();
}

static void test_timeout(void) {
  setup(0, 0, 13);
  nodes[0].tx_total = 300000;
  pump(&nodes[0]);
  run(12000, NULL);
  CHECK(nodes[1].rx_bytes > 0);
  uint64_t t0 = sim.now;
  sim.blackhole[1] = 1; /* B receives nothing from now on */
  CHECK(run(60ull * 1000000, both_closed) == 0);
  CHECK(nodes[0].closed_io);
  CHECK_EQ_INT(nodes[0].status, HSP_UDX_ETIMEDOUT);
  double secs = (double)(nodes[0].closed_at - t0) / 1e6;
  printf("timeout after %.2f s (libudx: ~13 s)\n", secs);
  CHECK(secs > 11.0 && secs < 16.0);
  CHECK_EQ_INT(nodes[0].write_err, HSP_UDX_ETIMEDOUT);
  teardown();
}

static int b_stalled(void) { return nodes[1].s.ready_bytes >= HSP_UDX_DEFAULT_RWND - 2000; }

static void test_flow_control(void) {
  setup(0, 0, 14);
  hsp_udx_stream_read_stop(&nodes[1].s);
  nodes[0].tx_total = 10000000;
  nodes[1].end_after_eof = 1;
  pump(&nodes[0]);
  CHECK(run(30ull * 1000000, b_stalled));
  /* Let it sit: the sender must not overrun the window (only zero-window probes go). */
  run(5ull * 1000000, NULL);
  printf("flow control: %zu bytes buffered with reading stopped\n", nodes[1].s.ready_bytes);
  /* max(1, rwnd / mss) lets one packet past a nearly closed window, as in libudx */
  CHECK(nodes[1].s.ready_bytes <= HSP_UDX_DEFAULT_RWND + 2 * HSP_UDX_PAYLOAD_IPV4);
  CHECK_EQ_INT(nodes[1].rx_bytes, 0);
  CHECK(!nodes[0].closed_io);
  hsp_udx_stream_read_start(&nodes[1].s, on_read);
  CHECK(run(120ull * 1000000, both_closed));
  CHECK_EQ_INT(nodes[1].rx_bytes, 10000000);
  CHECK_EQ_INT(nodes[1].rx_bad, 0);
  CHECK_EQ_INT(nodes[1].status, 0);
  teardown();
}

static void test_message_and_seq_wrap(void) {
  setup(0.05, 0.1, 15);
  /* Initial sequence numbers near 2^32 are agreed out of band; data crosses the wrap. */
  CHECK_EQ_INT(hsp_udx_stream_set_seq(&nodes[0].s, 0xfffffff0u), 0);
  CHECK_EQ_INT(hsp_udx_stream_set_ack(&nodes[1].s, 0xfffffff0u), 0);
  CHECK_EQ_INT(hsp_udx_stream_send(&nodes[0].s, (const uint8_t *)"msg", 3), 0);
  uint8_t big[HSP_UDX_PAYLOAD_IPV4 + 1] = {0};
  CHECK_EQ_INT(hsp_udx_stream_send(&nodes[0].s, big, sizeof(big)), HSP_UDX_EMSGSIZE);
  nodes[0].tx_total = 1000000;
  nodes[1].end_after_eof = 1;
  pump(&nodes[0]);
  CHECK(run(120ull * 1000000, both_closed));
  CHECK_EQ_INT(nodes[1].rx_bytes, 1000000);
  CHECK_EQ_INT(nodes[1].rx_bad, 0);
  CHECK(nodes[1].msgs <= 1); /* unreliable: may be lost */
  CHECK_EQ_INT(nodes[0].status, 0);
  teardown();
}

static void test_malformed(void) {
  /* Absurd acks, SACK blocks and seqs must not corrupt state: the transfer still completes. */
  setup(0, 0, 16);
  nodes[0].tx_total = 2000000;
  nodes[1].end_after_eof = 1;
  pump(&nodes[0]);
  run(50000, NULL);
  uint8_t buf[20 + 24];
  hsp_udx_header_t h = {.type = HSP_UDX_TYPE_SACK, .id = 1, .rwnd = 0, .seq = 12345678,
                        .ack = 0x80000000u};
  hsp_udx_header_encode(buf, &h);
  /* the third block passes naive signed checks but spans 2^28 seqs (found by the fuzzer) */
  hsp_udx_sack_block_t b[3] = {{5, 0x7fffffff}, {0xfffffff0u, 3}, {0x7fffffff, 0x90000000u}};
  b[2].start += nodes[0].s.remote_acked;
  b[2].end += nodes[0].s.remote_acked;
  hsp_udx_sack_encode(buf + 20, b, 3);
  hsp_udx_header_decode(buf, sizeof(buf), &h);
  hsp_udx__stream_recv(&nodes[0].s, &h, buf + 20, 24); /* bogus ack: ignored */
  h.ack = nodes[0].s.remote_acked;
  hsp_udx__stream_recv(&nodes[0].s, &h, buf + 20, 24); /* invalid SACK blocks: ignored */
  h = (hsp_udx_header_t){.type = HSP_UDX_TYPE_DATA, .id = 2, .rwnd = 1, .seq = 0x7ffffff0u};
  hsp_udx__stream_recv(&nodes[1].s, &h, (const uint8_t *)"zz", 2); /* far future seq */
  h.seq = nodes[1].s.ack - 5;
  hsp_udx__stream_recv(&nodes[1].s, &h, (const uint8_t *)"zz", 2); /* old duplicate */
  CHECK(run(120ull * 1000000, both_closed));
  CHECK_EQ_INT(nodes[1].rx_bytes, 2000000);
  CHECK_EQ_INT(nodes[1].rx_bad, 0);
  CHECK_EQ_INT(nodes[0].status, 0);
  CHECK_EQ_INT(nodes[1].status, 0);
  teardown();
}

int main(void) {
  test_empty_and_hello();
  test_bulk(0, 0, 5 * 1024 * 1024, "clean 5 MiB");
  test_bulk(0.05, 0.1, 20 * 1024 * 1024, "5% loss + reorder 20 MiB");
  test_half_close();
  test_destroy();
  test_timeout();
  test_flow_control();
  test_message_and_seq_wrap();
  test_malformed();
  for (int i = 0; i < 2; i++) {
    for (int k = 0; k < 64; k++) free(nodes[i].wbufs[k]);
  }
  while (sim.heap_len) free(heap_pop());
  free(sim.heap);
  hsp_udx__pool_free(&pool);
  return check_summary("test_udx_sim");
}
