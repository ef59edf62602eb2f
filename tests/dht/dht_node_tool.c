/*
 * Test-only driver that runs one sans-I/O DHT node on two real UDP sockets bound to
 * 127.0.0.1 (plain POSIX sockets + poll: the product I/O layer will be libuv + UDX).
 * Used by tests/interop/dht_rpc_live.js to run the C node inside JS dht-rpc networks.
 *
 *   dht_node_tool [--port P] [--bootstrap HOST:PORT]... [--bootstrapper]
 *                 [--persistent | --ephemeral] [--not-firewalled]
 * stdout: "listening <server port> <client port>", "ready <persistent 0|1> <id hex|->",
 *         "event <name>", and answers to stdin commands:
 *   findnode <target hex>      -> "closest <n> host:port..." then "done <err> <successes>"
 *   table                      -> "table <n> host:port..."
 *   nat                        -> "nat <host:port|->"
 *   stats                      -> "stats" + application requests received per command 0..15
 *   serve SEED / unserve       -> announce H(pk) like a server: "relays <n>" after each
 *                                 update, "stopped" after unannouncing
 *   ping HOST:PORT             -> "pong <err> <to host:port>"
 *   exit
 * Application command 42 is answered with "pong" (with token), 44 is ignored, others get
 * UNKNOWN_COMMAND.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dht.h"
#include "hex.h"
#include "announcer.h"
#include "hyper_client.h"
#include "store.h"

static int socks[2];
static hsp_dht_node_t *node;
static hsp_dht_store_t *store; /* --store: act as a hyperdht storage node */
static hsp_dht_announcer_t announcer; /* "serve SEED" */
static bool serving;

static void on_ann_update(void *ctx, hsp_dht_announcer_t *a) {
  (void)ctx;
  printf("relays %zu\n", a->relay_count);
}
static void on_ann_stopped(void *ctx, hsp_dht_announcer_t *a) {
  (void)ctx;
  (void)a;
  printf("stopped\n");
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int bind_udp(uint16_t port, uint16_t *bound) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(sa);
  getsockname(fd, (struct sockaddr *)&sa, &len);
  *bound = ntohs(sa.sin_port);
  return fd;
}

static int parse_addr(const char *text, hsp_ipv4_addr_t *out) {
  char host[64];
  const char *colon = strrchr(text, ':');
  if (!colon || (size_t)(colon - text) >= sizeof(host)) return -1;
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = 0;
  if (hsp_ipv4_parse(host, out->host) != 0) return -1;
  out->port = (uint16_t)atoi(colon + 1);
  return 0;
}

static void print_addr(const hsp_ipv4_addr_t *a) {
  printf("%u.%u.%u.%u:%u", a->host[0], a->host[1], a->host[2], a->host[3], a->port);
}

static void flush_out(void) {
  hsp_dht_datagram_t d;
  while (hsp_dht_node_next_datagram(node, &d)) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(d.to.port)};
    memcpy(&sa.sin_addr, d.to.host, 4);
    sendto(socks[d.socket], d.data, d.len, 0, (struct sockaddr *)&sa, sizeof(sa));
  }
  fflush(stdout);
}

static unsigned long seen_commands[16]; /* application requests received, by command */

static bool on_request(void *ctx, hsp_dht_node_t *n, const hsp_dht_incoming_t *req) {
  (void)ctx;
  if (req->command < 16) seen_commands[req->command]++;
  if (req->command == 42) {
    hsp_dht_reply_opts_t o;
    hsp_dht_reply_opts_default(&o);
    o.value = (const uint8_t *)"pong";
    o.value_len = 4;
    o.has_value = true;
    hsp_dht_node_reply(n, req, &o);
    return true;
  }
  if (req->command == 44) return true;
  if (store) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wall = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    return hsp_dht_store_on_request(store, n, req, now_ms(), wall);
  }
  return false;
}

static void on_event(void *ctx, hsp_dht_node_t *n, int ev) {
  (void)ctx;
  static const char *names[] = {"", "ready", "persistent", "ephemeral", "nat-update", "wakeup"};
  if (ev == HSP_DHT_EVENT_READY) {
    const uint8_t *id = hsp_dht_node_id(n);
    char hex[65] = "-";
    if (id) hsp_hex_encode(hex, id, 32);
    printf("ready %d %s\n", id != NULL, hex);
  } else if (ev > 0 && ev <= 5) {
    printf("event %s\n", names[ev]);
  }
}

static void q_reply(void *ctx, const hsp_dht_reply_t *r) {
  (void)ctx;
  (void)r;
}
static void q_done(void *ctx, const hsp_dht_query_result_t *res) {
  (void)ctx;
  printf("closest %zu", res->closest_count);
  for (size_t i = 0; i < res->closest_count; i++) {
    printf(" ");
    print_addr(&res->closest[i].from);
  }
  printf("\ndone %d %zu\n", res->err, res->successes);
}

static void on_pong(void *ctx, const hsp_dht_reply_t *reply, int err) {
  (void)ctx;
  printf("pong %d ", err);
  if (reply) print_addr(&reply->to);
  else printf("-");
  printf("\n");
}

/* hyperdht client operations: "op <name> <commits> <closest> <records>" when done. */
typedef struct hop {
  const char *name;
  uint8_t want_pk[32];
  size_t records;
  bool found;
  uint64_t seq;
  char value[64];
} hop_t;
static hop_t hop;

static void hop_reply(void *ctx, const hsp_dht_reply_t *r) {
  hop_t *h = ctx;
  if (!r->has_value || !r->value.len) return;
  if (!strcmp(h->name, "lookup")) {
    hsp_dht_lookup_reply_t lr;
    hsp_dht_peer_t p;
    size_t off = 0;
    if (hsp_dht_lookup_reply_decode(&lr, r->value.data, r->value.len) != 0) return;
    while (hsp_dht_lookup_reply_next(&lr, &off, &p) == 0)
      if (!memcmp(p.public_key, h->want_pk, 32)) h->records++;
  } else if (!strcmp(h->name, "mutget")) {
    hsp_dht_mutable_get_response_t m;
    if (hsp_dht_mutable_get_response_decode(&m, r->value.data, r->value.len) != 0) return;
    if (!hsp_dht_mutable_verify(m.signature, m.seq, m.value, h->want_pk)) return;
    if (h->found && m.seq <= h->seq) return;
    h->found = true;
    h->seq = m.seq;
    size_t n = m.value.len < sizeof(h->value) - 1 ? m.value.len : sizeof(h->value) - 1;
    memcpy(h->value, m.value.data, n);
    h->value[n] = 0;
    h->records++;
  }
}

static void hop_done(void *ctx, const hsp_dht_query_result_t *res) {
  hop_t *h = ctx;
  printf("op %s %d %zu %zu %zu", h->name, res->err, res->commits_ok, res->closest_count, h->records);
  if (h->found) printf(" %llu %s", (unsigned long long)h->seq, h->value);
  printf("\n");
}

static void command(char *line, uint64_t now) {
  line[strcspn(line, "\r\n")] = 0;
  if (strncmp(line, "findnode ", 9) == 0) {
    uint8_t target[32];
    if (hsp_hex_decode(target, 32, line + 9) != 0) {
      printf("error bad target\n");
      return;
    }
    hsp_dht_query_cbs_t cbs = {q_reply, q_done, NULL};
    hsp_dht_node_find_node(node, target, &cbs);
    hsp_dht_node_advance(node, now);
  } else if (strcmp(line, "table") == 0) {
    hsp_dht_table_t *t = hsp_dht_node_table(node);
    printf("table %zu", t->size);
    for (size_t i = 0; i < t->size; i++) {
      printf(" ");
      print_addr(&hsp_dht_table_at(t, i)->addr);
    }
    printf("\n");
  } else if (strcmp(line, "nat") == 0) {
    const hsp_dht_nat_sampler_t *s = hsp_dht_node_nat(node);
    printf("nat ");
    if (s->has_host) {
      hsp_ipv4_addr_t a;
      memcpy(a.host, s->host, 4);
      a.port = s->port;
      print_addr(&a);
    } else {
      printf("-");
    }
    printf("\n");
  } else if (strncmp(line, "ping ", 5) == 0) {
    hsp_dht_request_opts_t o;
    hsp_dht_request_opts_default(&o);
    if (parse_addr(line + 5, &o.to) != 0) {
      printf("error bad address\n");
      return;
    }
    o.internal = true;
    o.command = HSP_DHT_CMD_PING;
    hsp_dht_node_request(node, &o, on_pong, NULL);
  } else if (!strncmp(line, "announce ", 9) || !strncmp(line, "lookup ", 7) ||
             !strncmp(line, "mutput ", 7) || !strncmp(line, "mutget ", 7)) {
    /* announce TOPIC SEED | lookup TOPIC PK | mutput SEED SEQ TEXT | mutget PK SEQ */
    char a[65] = "", b[65] = "", c[64] = "";
    char name[16];
    sscanf(line, "%15s %64s %64s %63s", name, a, b, c);
    memset(&hop, 0, sizeof(hop));
    hsp_dht_query_cbs_t cbs = {hop_reply, hop_done, &hop};
    uint8_t x[32], y[32];
    hsp_crypto_keypair_t kp;
    if (!strcmp(name, "announce") && !hsp_hex_decode(x, 32, a) && !hsp_hex_decode(y, 32, b)) {
      hop.name = "announce";
      hsp_crypto_keypair_from_seed(&kp, y);
      hsp_dht_announce(node, x, &kp, NULL, 0, &cbs);
    } else if (!strcmp(name, "lookup") && !hsp_hex_decode(x, 32, a) && !hsp_hex_decode(hop.want_pk, 32, b)) {
      hop.name = "lookup";
      hsp_dht_lookup(node, x, &cbs);
    } else if (!strcmp(name, "mutput") && !hsp_hex_decode(y, 32, a)) {
      hop.name = "mutput";
      hsp_crypto_keypair_from_seed(&kp, y);
      hsp_dht_mutable_put(node, &kp, strtoull(b, NULL, 10), (const uint8_t *)c, strlen(c), &cbs);
    } else if (!strcmp(name, "mutget") && !hsp_hex_decode(hop.want_pk, 32, a)) {
      hop.name = "mutget";
      hsp_dht_mutable_get(node, hop.want_pk, strtoull(b, NULL, 10), &cbs);
    } else {
      printf("error bad arguments\n");
      return;
    }
    hsp_dht_node_advance(node, now);
  } else if (!strncmp(line, "serve ", 6)) {
    /* serve SEED: announce H(pk) like a listening hyperdht server */
    uint8_t seed[32], target[32];
    hsp_crypto_keypair_t kp;
    if (serving || hsp_hex_decode(seed, 32, line + 6)) {
      printf("error bad seed\n");
      return;
    }
    hsp_crypto_keypair_from_seed(&kp, seed);
    hsp_crypto_hash(target, kp.public_key, 32);
    hsp_dht_announcer_init(&announcer, node, &kp, target);
    announcer.on_update = on_ann_update;
    announcer.on_stopped = on_ann_stopped;
    serving = true;
    hsp_dht_announcer_start(&announcer, now);
    hsp_dht_node_advance(node, now);
  } else if (strcmp(line, "unserve") == 0) {
    if (serving) hsp_dht_announcer_stop(&announcer);
    hsp_dht_node_advance(node, now);
  } else if (strcmp(line, "stats") == 0) {
    printf("stats");
    for (int i = 0; i < 16; i++) printf(" %lu", seen_commands[i]);
    printf("\n");
  } else if (strcmp(line, "stored") == 0) {
    printf("stored %zu\n", store ? hsp_dht_store_count(store, now) : 0);
  } else if (strcmp(line, "exit") == 0) {
    if (serving) hsp_dht_announcer_destroy(&announcer);
    hsp_dht_node_destroy(node);
    hsp_dht_store_free(store);
    exit(0);
  }
}

int main(int argc, char **argv) {
  hsp_dht_config_t cfg;
  hsp_dht_config_default(&cfg);
  uint16_t port = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = (uint16_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--bootstrap") && i + 1 < argc && cfg.bootstrap_count < HSP_DHT_MAX_BOOTSTRAP)
      parse_addr(argv[++i], &cfg.bootstrap[cfg.bootstrap_count++]);
    else if (!strcmp(argv[i], "--bootstrapper")) cfg.bootstrapper = true;
    else if (!strcmp(argv[i], "--persistent")) cfg.ephemeral = 0;
    else if (!strcmp(argv[i], "--ephemeral")) cfg.ephemeral = 1;
    else if (!strcmp(argv[i], "--not-firewalled")) cfg.firewalled = false;
    else if (!strcmp(argv[i], "--store")) hsp_dht_store_init(&store, NULL);
  }
  uint16_t sport, cport;
  socks[0] = bind_udp(port, &sport);
  socks[1] = bind_udp(0, &cport);
  if (socks[0] < 0 || socks[1] < 0) {
    fprintf(stderr, "bind failed: %s\n", strerror(errno));
    return 1;
  }
  cfg.server_port = sport;
  cfg.bootstrapper_addr = (hsp_ipv4_addr_t){{127, 0, 0, 1}, sport};
  cfg.on_request = on_request;
  cfg.on_event = on_event;
  uint64_t now = now_ms();
  if (hsp_dht_node_init(&node, &cfg, now) != 0) return 1;
  printf("listening %u %u\n", sport, cport);
  hsp_dht_node_start(node, now);
  flush_out();

  char line[256];
  uint8_t buf[65536];
  for (;;) {
    now = now_ms();
    uint64_t deadline = hsp_dht_node_next_deadline(node);
    if (serving && hsp_dht_announcer_next_deadline(&announcer) < deadline)
      deadline = hsp_dht_announcer_next_deadline(&announcer);
    int timeout = deadline <= now ? 0 : deadline - now > 1000 ? 1000 : (int)(deadline - now);
    struct pollfd fds[3] = {{socks[0], POLLIN, 0}, {socks[1], POLLIN, 0}, {0, POLLIN, 0}};
    poll(fds, 3, timeout);
    now = now_ms();
    for (int s = 0; s < 2; s++) {
      if (!(fds[s].revents & POLLIN)) continue;
      struct sockaddr_in sa;
      socklen_t len = sizeof(sa);
      ssize_t n = recvfrom(socks[s], buf, sizeof(buf), 0, (struct sockaddr *)&sa, &len);
      if (n <= 0) continue;
      hsp_ipv4_addr_t from;
      memcpy(from.host, &sa.sin_addr, 4);
      from.port = ntohs(sa.sin_port);
      hsp_dht_node_recv(node, s, &from, buf, (size_t)n, now);
    }
    if (fds[2].revents & (POLLIN | POLLHUP)) {
      if (!fgets(line, sizeof(line), stdin)) {
        if (serving) hsp_dht_announcer_destroy(&announcer);
        hsp_dht_node_destroy(node);
        hsp_dht_store_free(store);
        return 0;
      }
      command(line, now);
    }
    if (serving) hsp_dht_announcer_advance(&announcer, now);
    hsp_dht_node_advance(node, now);
    flush_out();
  }
}
