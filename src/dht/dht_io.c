/* libuv + hsp_udx driver of a DHT node (dht_io.h). */
#include "dht_io.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

/* A pool socket (holepunch): owned by refs (the puncher, then a connection using it). */
typedef struct extra_socket {
  hsp_udx_socket_t sock;
  hsp_dht_io_t *io;
  int id, refs;
  hsp_dht_io_raw_cb raw_cb;
  void *raw_ctx;
} extra_socket_t;

typedef struct relay_cache_entry {
  uint8_t target[32];
  hsp_ipv4_addr_t relays[HSP_DHT_IO_CACHED_RELAYS];
  size_t n;
  uint64_t used; /* LRU stamp, 0 = empty */
} relay_cache_entry_t;

struct hsp_dht_io {
  uv_loop_t *loop;
  hsp_udx_t udx;
  hsp_udx_socket_t sockets[2];
  uv_timer_t timer;
  uv_prepare_t prepare;
  hsp_dht_node_t *node;
  hsp_dht_store_t *store;
  hsp_ipv4_addr_t address;
  bool ready;
  void (*on_ready)(hsp_dht_io_t *io, void *ctx);
  void *ready_ctx;
  hsp_dht_io_ticker_t *tickers;
  hsp_dht_io_raw_cb raw_cb;
  void *raw_ctx;
  bool (*req_cb)(void *ctx, hsp_dht_node_t *node, const hsp_dht_incoming_t *req);
  void *req_ctx;
  uint64_t armed; /* deadline the timer is set for, UINT64_MAX = none */
  extra_socket_t *extra[HSP_DHT_IO_MAX_SOCKETS]; /* by id; 0 and 1 unused */
  unsigned pass;        /* run_due generation */
  hsp_dht_punch_limit_t punch_limit;
  relay_cache_entry_t relay_cache[HSP_DHT_IO_RELAY_CACHE];
  uint64_t relay_stamp;
  bool tickers_removed; /* set by remove_ticker during an advance */
  int next_extra;
  int pending_closes;
  bool closing;
  void (*close_cb)(void *ctx);
  void *close_ctx;
};

static uint64_t io_now(const hsp_dht_io_t *io) { return uv_now(io->loop); }

void hsp_dht_io_opts_default(hsp_dht_io_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->host = "0.0.0.0";
  o->ephemeral = -1;
  o->firewalled = true;
}

const char *hsp_dht_io_strerror(int err) {
  if (err <= -100) return hsp_udx_strerror(err + 100);
  return hsp_dht_strerror(err);
}

static int resolve(const char *host, uint8_t out[4]) {
  if (hsp_ipv4_parse(host, out) == 0) return 0;
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
  struct addrinfo *res = NULL;
  if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return HSP_DHT_EINVAL;
  memcpy(out, &((struct sockaddr_in *)res->ai_addr)->sin_addr, 4);
  freeaddrinfo(res);
  return 0;
}

int hsp_dht_parse_bootstrap(const char *list, hsp_ipv4_addr_t *out, size_t max) {
  size_t n = 0;
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len) {
      char item[300];
      if (len >= sizeof(item) || n >= max) return HSP_DHT_ERANGE;
      memcpy(item, p, len);
      item[len] = 0;
      char *colon = strrchr(item, ':');
      if (!colon) return HSP_DHT_EINVAL;
      *colon = 0;
      char *tail;
      long port = strtol(colon + 1, &tail, 10);
      if (*tail || port <= 0 || port > 65535) return HSP_DHT_EINVAL;
      if (resolve(item, out[n].host) != 0) return HSP_DHT_EINVAL;
      out[n].port = (uint16_t)port;
      n++;
    }
    if (!end) break;
    p = end + 1;
  }
  return (int)n;
}

static void to_sockaddr(struct sockaddr_in *sa, const hsp_ipv4_addr_t *a) {
  memset(sa, 0, sizeof(*sa));
  sa->sin_family = AF_INET;
  sa->sin_port = htons(a->port);
  memcpy(&sa->sin_addr, a->host, 4);
}

static hsp_udx_socket_t *socket_of(hsp_dht_io_t *io, int id) {
  if (id == 0 || id == 1) return &io->sockets[id];
  if (id < 2 || id >= HSP_DHT_IO_MAX_SOCKETS || !io->extra[id] || io->extra[id]->refs <= 0)
    return NULL;
  return &io->extra[id]->sock;
}

static int send_ttl(hsp_udx_socket_t *s, const uint8_t *buf, size_t len,
                    const hsp_ipv4_addr_t *to, uint8_t ttl) {
  struct sockaddr_in sa;
  to_sockaddr(&sa, to);
  int t = ttl;
  /* The send happens right away, so a per-datagram TTL is a setsockopt around it. */
  if (ttl) setsockopt(s->fd, IPPROTO_IP, IP_TTL, &t, sizeof(t));
  int err = hsp_udx_socket_send(s, buf, len, (const struct sockaddr *)&sa);
  if (ttl && ttl != HSP_DHT_IO_DEFAULT_TTL) {
    t = HSP_DHT_IO_DEFAULT_TTL;
    setsockopt(s->fd, IPPROTO_IP, IP_TTL, &t, sizeof(t));
  }
  return err;
}

static void flush(hsp_dht_io_t *io) {
  hsp_dht_datagram_t d;
  while (hsp_dht_node_next_datagram(io->node, &d)) {
    hsp_udx_socket_t *s = socket_of(io, d.socket);
    /* A closed pool socket or a full send buffer drops the datagram: dht-rpc retries. */
    if (s) send_ttl(s, d.data, d.len, &d.to, d.ttl);
  }
}

static uint64_t next_deadline(hsp_dht_io_t *io) {
  uint64_t d = hsp_dht_node_next_deadline(io->node);
  for (hsp_dht_io_ticker_t *t = io->tickers; t; t = t->next) {
    uint64_t x = t->deadline(t);
    if (x < d) d = x;
  }
  return d;
}

static void run_due(hsp_dht_io_t *io) {
  uint64_t now = io_now(io);
  unsigned pass = ++io->pass;
  hsp_dht_io_ticker_t *t = io->tickers;
  while (t) {
    if (t->pass == pass || t->deadline(t) > now) {
      t = t->next;
      continue;
    }
    t->pass = pass;
    io->tickers_removed = false;
    t->advance(t, now);
    /* A removal may have freed t or its successor: rescan; `pass` skips those already run. */
    t = io->tickers_removed ? io->tickers : t->next;
  }
  if (hsp_dht_node_next_deadline(io->node) <= now) hsp_dht_node_advance(io->node, now);
}

static void on_timer(uv_timer_t *t) {
  hsp_dht_io_t *io = t->data;
  io->armed = UINT64_MAX;
  run_due(io);
}

/* Before every poll: send what the node produced and follow its deadline. */
static void on_prepare(uv_prepare_t *p) {
  hsp_dht_io_t *io = p->data;
  if (io->closing) return;
  uv_update_time(io->loop);
  uint64_t now = io_now(io);
  if (next_deadline(io) <= now) run_due(io);
  flush(io);
  uint64_t d = next_deadline(io);
  if (d == io->armed) return;
  io->armed = d;
  if (d == UINT64_MAX) {
    uv_timer_stop(&io->timer);
  } else {
    uv_timer_start(&io->timer, on_timer, d > now ? d - now : 0, 0);
  }
}

void hsp_dht_io_wake(hsp_dht_io_t *io) {
  io->armed = 0; /* force re-arming at the next prepare */
  uv_timer_start(&io->timer, on_timer, 0, 0);
}

static void deliver(hsp_dht_io_t *io, int which, hsp_dht_io_raw_cb raw_cb, void *raw_ctx,
                    const uint8_t *buf, size_t len, const struct sockaddr *from) {
  if (io->closing || from->sa_family != AF_INET) return;
  const struct sockaddr_in *sa = (const struct sockaddr_in *)from;
  hsp_ipv4_addr_t a;
  memcpy(a.host, &sa->sin_addr, 4);
  a.port = ntohs(sa->sin_port);
  if (hsp_dht_message_type(buf, len) != 0) {
    hsp_dht_node_recv(io->node, which, &a, buf, len, io_now(io));
  } else if (raw_cb) {
    raw_cb(raw_ctx, which, &a, buf, len);
  }
}

static void on_recv(hsp_udx_socket_t *sock, const uint8_t *buf, size_t len,
                    const struct sockaddr *from) {
  hsp_dht_io_t *io = sock->data;
  deliver(io, sock == &io->sockets[0] ? 0 : 1, io->raw_cb, io->raw_ctx, buf, len, from);
}

static void on_recv_extra(hsp_udx_socket_t *sock, const uint8_t *buf, size_t len,
                          const struct sockaddr *from) {
  extra_socket_t *x = sock->data;
  if (x->refs > 0) deliver(x->io, x->id, x->raw_cb, x->raw_ctx, buf, len, from);
}

static bool on_request(void *ctx, hsp_dht_node_t *node, const hsp_dht_incoming_t *req) {
  hsp_dht_io_t *io = ctx;
  if (io->req_cb && io->req_cb(io->req_ctx, node, req)) return true;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t wall = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  return hsp_dht_store_on_request(io->store, node, req, io_now(io), wall);
}

static void on_event(void *ctx, hsp_dht_node_t *node, int event) {
  (void)node;
  hsp_dht_io_t *io = ctx;
  if (event == HSP_DHT_EVENT_READY && !io->ready) {
    io->ready = true;
    if (io->on_ready) io->on_ready(io, io->ready_ctx);
  }
}

static int bind_socket(hsp_dht_io_t *io, int which, const uint8_t host[4], uint16_t port) {
  hsp_udx_socket_t *s = &io->sockets[which];
  int err = hsp_udx_socket_init(&io->udx, s);
  if (err) return err - 100;
  s->data = io;
  hsp_ipv4_addr_t a = {{host[0], host[1], host[2], host[3]}, port};
  struct sockaddr_in sa;
  to_sockaddr(&sa, &a);
  err = hsp_udx_socket_bind(s, (const struct sockaddr *)&sa);
  if (!err) err = hsp_udx_socket_recv_start(s, on_recv);
  return err ? err - 100 : 0;
}

/* io holds the udx instance's handle: it may only be freed once that closed too. */
static void on_udx_closed(hsp_udx_t *udx) {
  hsp_dht_io_t *io = udx->data;
  void (*cb)(void *) = io->close_cb;
  void *ctx = io->close_ctx;
  free(io);
  if (cb) cb(ctx);
}

static void close_step(hsp_dht_io_t *io) {
  if (--io->pending_closes) return;
  /* The node is destroyed here, from the loop, because hsp_dht_io_close may be called from
   * inside one of its callbacks. */
  if (io->node) hsp_dht_node_destroy(io->node);
  io->node = NULL;
  hsp_dht_store_free(io->store);
  io->store = NULL;
  hsp_udx_deinit_cb(&io->udx, on_udx_closed);
}

static void on_handle_closed(uv_handle_t *h) { close_step(h->data); }

static void on_extra_closed(hsp_udx_socket_t *s) {
  extra_socket_t *x = s->data;
  hsp_dht_io_t *io = x->io;
  io->extra[x->id] = NULL;
  free(x);
  if (io->closing) close_step(io);
}
static void on_socket_closed(hsp_udx_socket_t *s) { close_step(s->data); }

int hsp_dht_io_create(hsp_dht_io_t **out, uv_loop_t *loop, const hsp_dht_io_opts_t *opts) {
  hsp_dht_io_opts_t def;
  if (!opts) {
    hsp_dht_io_opts_default(&def);
    opts = &def;
  }
  if (hsp_crypto_init() != 0) return HSP_DHT_ENOMEM;
  hsp_dht_config_t cfg;
  hsp_dht_config_default(&cfg);
  uint8_t host[4];
  if (resolve(opts->host ? opts->host : "0.0.0.0", host) != 0) return HSP_DHT_EINVAL;
  const char *list = opts->bootstrap ? opts->bootstrap : HSP_DHT_PUBLIC_BOOTSTRAP;
  int n = hsp_dht_parse_bootstrap(list, cfg.bootstrap, HSP_DHT_MAX_BOOTSTRAP);
  if (n < 0) return n;
  cfg.bootstrap_count = (size_t)n;

  hsp_dht_io_t *io = calloc(1, sizeof(*io));
  if (!io) return HSP_DHT_ENOMEM;
  io->loop = loop;
  io->armed = UINT64_MAX;
  int err = hsp_udx_init(loop, &io->udx);
  if (err) {
    free(io);
    return err - 100;
  }
  io->udx.data = io;
  int bound = 0;
  err = bind_socket(io, 0, host, opts->port);
  if (!err) {
    bound = 1;
    err = bind_socket(io, 1, host, 0);
    if (!err) bound = 2;
  }
  if (err == 0 && hsp_dht_store_init(&io->store, NULL) != 0) err = HSP_DHT_ENOMEM;
  struct sockaddr_storage ss;
  if (!err) {
    hsp_udx_socket_getsockname(&io->sockets[0], &ss);
    memcpy(io->address.host, host, 4);
    io->address.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    cfg.server_port = io->address.port;
    cfg.ephemeral = opts->ephemeral;
    cfg.firewalled = opts->firewalled;
    if (n == 0) {
      /* First node of a private network: DHT.bootstrapper(port, host). */
      cfg.bootstrapper = true;
      cfg.bootstrapper_addr = io->address;
      cfg.firewalled = false;
    }
    cfg.on_request = on_request;
    cfg.on_event = on_event;
    cfg.ctx = io;
    if (hsp_dht_node_init(&io->node, &cfg, uv_now(loop)) != 0) err = HSP_DHT_ENOMEM;
  }
  if (err) {
    hsp_dht_store_free(io->store);
    io->store = NULL;
    io->closing = true;
    if (!bound) {
      hsp_udx_deinit_cb(&io->udx, on_udx_closed);
      return err;
    }
    /* Bound sockets close asynchronously; the last one frees io. */
    io->pending_closes = bound;
    for (int i = 0; i < bound; i++) hsp_udx_socket_close(&io->sockets[i], on_socket_closed);
    return err;
  }
  uv_timer_init(loop, &io->timer);
  io->timer.data = io;
  uv_prepare_init(loop, &io->prepare);
  io->prepare.data = io;
  uv_prepare_start(&io->prepare, on_prepare);
  hsp_dht_node_start(io->node, io_now(io));
  *out = io;
  return 0;
}

void hsp_dht_io_on_ready(hsp_dht_io_t *io, void (*cb)(hsp_dht_io_t *, void *), void *ctx) {
  io->on_ready = cb;
  io->ready_ctx = ctx;
}

hsp_dht_node_t *hsp_dht_io_node(hsp_dht_io_t *io) { return io->node; }
hsp_dht_store_t *hsp_dht_io_store(hsp_dht_io_t *io) { return io->store; }
hsp_udx_t *hsp_dht_io_udx(hsp_dht_io_t *io) { return &io->udx; }
uv_loop_t *hsp_dht_io_loop(hsp_dht_io_t *io) { return io->loop; }
hsp_udx_socket_t *hsp_dht_io_socket(hsp_dht_io_t *io, int which) { return socket_of(io, which); }
hsp_ipv4_addr_t hsp_dht_io_address(const hsp_dht_io_t *io) { return io->address; }
uint64_t hsp_dht_io_now(const hsp_dht_io_t *io) { return io_now(io); }
bool hsp_dht_io_ready(const hsp_dht_io_t *io) { return io->ready; }

void hsp_dht_io_add_ticker(hsp_dht_io_t *io, hsp_dht_io_ticker_t *t) {
  t->pass = io->pass; /* not run by a pass already under way */
  t->next = io->tickers;
  io->tickers = t;
}

void hsp_dht_io_remove_ticker(hsp_dht_io_t *io, hsp_dht_io_ticker_t *t) {
  for (hsp_dht_io_ticker_t **p = &io->tickers; *p; p = &(*p)->next) {
    if (*p == t) {
      *p = t->next;
      io->tickers_removed = true;
      return;
    }
  }
}

void hsp_dht_io_on_raw(hsp_dht_io_t *io, hsp_dht_io_raw_cb cb, void *ctx) {
  io->raw_cb = cb;
  io->raw_ctx = ctx;
}

int hsp_dht_io_socket_open(hsp_dht_io_t *io, hsp_dht_io_raw_cb raw, void *ctx) {
  if (io->closing) return HSP_DHT_EDESTROYED;
  /* Round-robin ids, so a late retry of a request from a closed socket id rarely finds a new
   * socket under the same id. */
  int id = -1;
  for (int i = 0; i < HSP_DHT_IO_MAX_SOCKETS - 2; i++) {
    int c = 2 + (io->next_extra + i) % (HSP_DHT_IO_MAX_SOCKETS - 2);
    if (!io->extra[c]) {
      id = c;
      break;
    }
  }
  if (id < 0) return HSP_DHT_ERANGE;
  extra_socket_t *x = calloc(1, sizeof(*x));
  if (!x) return HSP_DHT_ENOMEM;
  int err = hsp_udx_socket_init(&io->udx, &x->sock);
  if (err) {
    free(x);
    return err - 100;
  }
  x->sock.data = x;
  x->io = io;
  x->id = id;
  x->refs = 1;
  x->raw_cb = raw;
  x->raw_ctx = ctx;
  io->extra[id] = x;
  io->next_extra = id - 1; /* next search starts after this id */
  struct sockaddr_in sa;
  hsp_ipv4_addr_t any = io->address;
  any.port = 0;
  to_sockaddr(&sa, &any);
  err = hsp_udx_socket_bind(&x->sock, (const struct sockaddr *)&sa);
  if (!err) err = hsp_udx_socket_recv_start(&x->sock, on_recv_extra);
  if (err) {
    x->refs = 0;
    hsp_udx_socket_close(&x->sock, on_extra_closed);
    return err - 100;
  }
  return id;
}

void hsp_dht_io_socket_ref(hsp_dht_io_t *io, int id) {
  if (socket_of(io, id) && id >= 2) io->extra[id]->refs++;
}

void hsp_dht_io_socket_unref(hsp_dht_io_t *io, int id) {
  if (id < 2 || !socket_of(io, id)) return;
  extra_socket_t *x = io->extra[id];
  if (--x->refs > 0) return;
  x->raw_cb = NULL;
  hsp_udx_socket_close(&x->sock, on_extra_closed);
}

void hsp_dht_io_socket_set_raw(hsp_dht_io_t *io, int id, hsp_dht_io_raw_cb raw, void *ctx) {
  if (id < 2 || !socket_of(io, id)) return;
  io->extra[id]->raw_cb = raw;
  io->extra[id]->raw_ctx = ctx;
}

int hsp_dht_io_socket_id(hsp_dht_io_t *io, const hsp_udx_socket_t *s) {
  if (s == &io->sockets[0]) return 0;
  if (s == &io->sockets[1]) return 1;
  for (int i = 2; i < HSP_DHT_IO_MAX_SOCKETS; i++)
    if (io->extra[i] && &io->extra[i]->sock == s) return i;
  return -1;
}

int hsp_dht_io_send_probe(hsp_dht_io_t *io, int id, const hsp_ipv4_addr_t *to, uint8_t ttl) {
  hsp_udx_socket_t *s = socket_of(io, id);
  if (!s) return HSP_DHT_EINVAL;
  static const uint8_t probe[1] = {0};
  int err = send_ttl(s, probe, 1, to, ttl);
  return err ? err - 100 : 0;
}

size_t hsp_dht_io_relay_cache_get(hsp_dht_io_t *io, const uint8_t target[32],
                                  hsp_ipv4_addr_t out[HSP_DHT_IO_CACHED_RELAYS]) {
  for (size_t i = 0; i < HSP_DHT_IO_RELAY_CACHE; i++) {
    relay_cache_entry_t *e = &io->relay_cache[i];
    if (!e->used || memcmp(e->target, target, 32) != 0) continue;
    e->used = ++io->relay_stamp;
    memcpy(out, e->relays, e->n * sizeof(e->relays[0]));
    return e->n;
  }
  return 0;
}

void hsp_dht_io_relay_cache_set(hsp_dht_io_t *io, const uint8_t target[32],
                                const hsp_ipv4_addr_t *relays, size_t n) {
  if (n > HSP_DHT_IO_CACHED_RELAYS) n = HSP_DHT_IO_CACHED_RELAYS;
  relay_cache_entry_t *slot = NULL, *lru = &io->relay_cache[0];
  for (size_t i = 0; i < HSP_DHT_IO_RELAY_CACHE && !slot; i++) {
    relay_cache_entry_t *e = &io->relay_cache[i];
    if (e->used && !memcmp(e->target, target, 32)) slot = e;
    else if (e->used < lru->used) lru = e; /* least recently used (or empty) */
  }
  if (!n) {
    if (slot) slot->used = 0;
    return;
  }
  if (!slot) slot = lru;
  memcpy(slot->target, target, 32);
  memcpy(slot->relays, relays, n * sizeof(relays[0]));
  slot->n = n;
  slot->used = ++io->relay_stamp;
}

hsp_dht_punch_limit_t *hsp_dht_io_punch_limit(hsp_dht_io_t *io) { return &io->punch_limit; }

size_t hsp_dht_io_local_addresses(hsp_dht_io_t *io, hsp_ipv4_addr_t *out, size_t max) {
  size_t n = 0;
  static const uint8_t any[4] = {0, 0, 0, 0}, loopback[4] = {127, 0, 0, 1};
  if (!max) return 0;
  if (memcmp(io->address.host, any, 4) != 0) {
    out[0] = io->address;
    return 1;
  }
  uv_interface_address_t *ifs = NULL;
  int count = 0;
  if (uv_interface_addresses(&ifs, &count) == 0) {
    for (int i = 0; i < count && n < max; i++) {
      if (ifs[i].is_internal || ifs[i].address.address4.sin_family != AF_INET) continue;
      memcpy(out[n].host, &ifs[i].address.address4.sin_addr, 4);
      out[n].port = io->address.port;
      n++;
    }
    uv_free_interface_addresses(ifs, count);
  }
  if (n == 0) {
    memcpy(out[0].host, loopback, 4);
    out[0].port = io->address.port;
    n = 1;
  }
  return n;
}

void hsp_dht_io_on_request(hsp_dht_io_t *io,
                           bool (*cb)(void *, hsp_dht_node_t *, const hsp_dht_incoming_t *),
                           void *ctx) {
  io->req_cb = cb;
  io->req_ctx = ctx;
}

void hsp_dht_io_close(hsp_dht_io_t *io, void (*cb)(void *), void *ctx) {
  if (io->closing) return;
  io->closing = true;
  io->close_cb = cb;
  io->close_ctx = ctx;
  io->pending_closes = 4;
  for (int i = 2; i < HSP_DHT_IO_MAX_SOCKETS; i++) {
    extra_socket_t *x = io->extra[i];
    if (!x) continue;
    io->pending_closes++;
    if (x->refs > 0) { /* not closing yet: close it now */
      x->refs = 0;
      x->raw_cb = NULL;
      hsp_udx_socket_close(&x->sock, on_extra_closed);
    }
  }
  uv_timer_stop(&io->timer);
  uv_prepare_stop(&io->prepare);
  uv_close((uv_handle_t *)&io->timer, on_handle_closed);
  uv_close((uv_handle_t *)&io->prepare, on_handle_closed);
  hsp_udx_socket_close(&io->sockets[0], on_socket_closed);
  hsp_udx_socket_close(&io->sockets[1], on_socket_closed);
}
