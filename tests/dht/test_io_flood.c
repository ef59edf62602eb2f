/* Garbage flood through the real I/O layer (issue #6): a `hyperseaport dht-node` process on
 * 127.0.0.1 gets 100,000 hostile datagrams from 32 source ports -- random bytes, random
 * bytes behind a DHT type byte, valid dht-rpc and hyperdht requests and responses that are
 * then truncated, bit-flipped or extended, bogus UDX headers (random and small stream ids),
 * fake PEER_HANDSHAKE / PEER_HOLEPUNCH payloads, forged ANNOUNCE / MUTABLE_PUT -- while a
 * legitimate client pings it after every burst of 250. Asserts: every ping is answered
 * during and after the flood, the node's RSS grows < 16 MiB, and it exits cleanly on
 * SIGTERM (which under ASan includes the leak check).
 *   test_dht_io_flood <hyperseaport binary> */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "crypto.h"
#include "hyper_messages.h"
#include "messages.h"
#include "packet.h"

#define PACKETS 100000
#define BURST 250
#define SOCKS 32

static pid_t child, server_pid;
static FILE *child_out, *server_out;
static int server_in;
static uint8_t server_target[32]; /* H(public key) of the pipe server announced on the node */
static struct sockaddr_in node_addr;
static int ping_sock;
static int flood[SOCKS];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static void rnd_bytes(uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rnd();
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static long status_kib(pid_t pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long v = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof(line), f))
    if (!strncmp(line, field, n) && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
  fclose(f);
  return v;
}

/* Kernel drops on the node's server socket (/proc/net/udp "drops", last column). */
static long socket_drops(void) {
  FILE *f = fopen("/proc/net/udp", "r");
  if (!f) return -1;
  char line[512];
  long drops = -1;
  unsigned port = ntohs(node_addr.sin_port);
  while (fgets(line, sizeof(line), f)) {
    unsigned lport;
    if (sscanf(line, " %*d: %*8X:%4X", &lport) != 1 || lport != port) continue;
    char *last = strrchr(line, ' ');
    if (last) drops = strtol(last + 1, NULL, 10);
  }
  fclose(f);
  return drops;
}

/* A port the kernel just gave out (the CLI wants an explicit one). */
static unsigned free_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || getsockname(fd, (struct sockaddr *)&sa, &len))
    sa.sin_port = 0;
  close(fd);
  return ntohs(sa.sin_port);
}

/* Runs bin with args; its stdout comes back as *out, its stdin as *in (if asked). */
static pid_t spawn(char *const args[], FILE **out, int *in) {
  int o[2], i[2];
  if (pipe(o) || pipe(i)) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(o[1], 1);
    dup2(i[0], 0);
    close(o[0]), close(o[1]), close(i[0]), close(i[1]);
    /* ASan keeps freed memory in a quarantine (256 MiB by default): RSS would measure the
     * quarantine, not the node. A small one keeps use-after-free detection. */
    const char *old = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4", old ? old : "", old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    execv(args[0], args);
    _exit(127);
  }
  close(o[1]);
  close(i[0]);
  *out = fdopen(o[0], "r");
  if (in) *in = i[1];
  else close(i[1]);
  return pid;
}

static int start_node(const char *bin) {
  char port_arg[16];
  snprintf(port_arg, sizeof(port_arg), "%u", free_port());
  char *args[] = {(char *)bin, "dht-node", "--host", "127.0.0.1", "--port", port_arg,
                  "--bootstrap", "", NULL};
  child = spawn(args, &child_out, NULL);
  if (child < 0) return -1;
  char line[256];
  unsigned port = 0;
  bool ready = false;
  while (!ready && fgets(line, sizeof(line), child_out)) {
    if (sscanf(line, "listening 127.0.0.1:%u", &port) == 1) continue;
    if (!strncmp(line, "ready", 5)) ready = true;
  }
  if (!ready || !port) return -1;
  node_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  node_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return 0;
}

static int udp_socket(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&sa, sizeof(sa));
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static hsp_ipv4_addr_t node_ipv4(void) {
  return (hsp_ipv4_addr_t){{127, 0, 0, 1}, ntohs(node_addr.sin_port)};
}

/* One PING with a fresh tid; true once its response arrived (resent twice if needed). */
static uint16_t next_tid = 1;
static bool ping(int timeout_ms) {
  for (int attempt = 0; attempt < 3; attempt++) {
    uint16_t tid = next_tid++;
    hsp_dht_request_t m = {.tid = tid, .to = node_ipv4(), .internal = true,
                           .command = HSP_DHT_CMD_PING};
    uint8_t buf[256];
    long n = hsp_dht_request_encode(buf, sizeof(buf), &m);
    if (n < 0) return false;
    sendto(ping_sock, buf, (size_t)n, 0, (struct sockaddr *)&node_addr, sizeof(node_addr));
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (now_ms() < end) {
      struct pollfd p = {ping_sock, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      uint8_t in[2048];
      ssize_t r;
      while ((r = recv(ping_sock, in, sizeof(in), 0)) > 0) {
        hsp_dht_response_t res;
        if (hsp_dht_response_decode(&res, in, (size_t)r) == 0 && res.tid == tid) return true;
      }
    }
  }
  return false;
}

/* ---- garbage ---- */

static long valid_request(uint8_t *buf, size_t cap) {
  uint8_t id[32], token[32], target[32], value[600];
  rnd_bytes(id, 32);
  rnd_bytes(token, 32);
  rnd_bytes(target, 32);
  hsp_dht_request_t m = {.tid = (uint16_t)rnd(), .to = node_ipv4()};
  m.internal = rnd() % 3 == 0;
  m.command = m.internal ? rnd() % 6 : rnd() % 12;
  if (rnd() % 2) m.id = id;
  if (rnd() % 3 == 0) m.token = token;
  if (rnd() % 2) m.target = target;
  size_t vlen = 0;
  switch (rnd() % 6) {
  case 0: { /* a PEER_HANDSHAKE with random noise bytes */
    uint8_t noise[200];
    rnd_bytes(noise, sizeof(noise));
    hsp_dht_handshake_t h = {.mode = rnd() % 6, .noise = {noise, 1 + rnd() % 200}};
    h.has_peer_address = rnd() % 2;
    h.peer_address = node_ipv4();
    m.internal = false;
    m.command = HSP_HYPER_PEER_HANDSHAKE;
    /* half of them addressed to the pipe server: the node relays them to its Noise responder */
    m.target = rnd() % 2 ? server_target : target;
    long n = hsp_dht_handshake_encode(value, sizeof(value), &h);
    vlen = n > 0 ? (size_t)n : 0;
    break;
  }
  case 1: { /* a PEER_HOLEPUNCH with a random sealed payload */
    uint8_t payload[160];
    rnd_bytes(payload, sizeof(payload));
    hsp_dht_holepunch_t h = {.mode = rnd() % 6, .id = rnd() % 4, .payload = {payload, rnd() % 160}};
    m.internal = false;
    m.command = HSP_HYPER_PEER_HOLEPUNCH;
    m.target = rnd() % 2 ? server_target : target;
    long n = hsp_dht_holepunch_encode(value, sizeof(value), &h);
    vlen = n > 0 ? (size_t)n : 0;
    break;
  }
  case 2: { /* a forged mutable put (bad signature) */
    uint8_t pk[32], sig[64], v[100];
    rnd_bytes(pk, 32);
    rnd_bytes(sig, 64);
    rnd_bytes(v, sizeof(v));
    hsp_dht_mutable_put_t p;
    memset(&p, 0, sizeof(p));
    p.public_key = pk;
    p.seq = rnd() % 100;
    p.value = (hsp_bytes_t){v, rnd() % 100};
    p.signature = sig;
    m.internal = false;
    m.command = HSP_HYPER_MUTABLE_PUT;
    m.target = target;
    m.token = token;
    long n = hsp_dht_mutable_put_encode(value, sizeof(value), &p);
    vlen = n > 0 ? (size_t)n : 0;
    break;
  }
  default:
    vlen = rnd() % 300;
    rnd_bytes(value, vlen);
  }
  if (rnd() % 4) {
    m.has_value = true;
    m.value = (hsp_bytes_t){value, vlen};
  }
  return hsp_dht_request_encode(buf, cap, &m);
}

static long valid_response(uint8_t *buf, size_t cap) {
  uint8_t id[32], token[32], closer[6 * 20], value[300];
  rnd_bytes(id, 32);
  rnd_bytes(token, 32);
  rnd_bytes(closer, sizeof(closer));
  rnd_bytes(value, sizeof(value));
  hsp_dht_response_t m = {.tid = (uint16_t)rnd(), .to = node_ipv4()};
  if (rnd() % 2) m.id = id;
  if (rnd() % 2) m.token = token;
  if (rnd() % 2) {
    m.closer = closer;
    m.closer_count = rnd() % 20;
  }
  if (rnd() % 3 == 0) m.error = rnd() % 4;
  if (rnd() % 2) {
    m.has_value = true;
    m.value = (hsp_bytes_t){value, rnd() % sizeof(value)};
  }
  return hsp_dht_response_encode(buf, cap, &m);
}

static size_t garbage(uint8_t *buf, size_t cap) {
  size_t len = 0;
  switch (rnd() % 8) {
  case 0: /* random bytes */
    len = rnd() % 1500;
    rnd_bytes(buf, len);
    break;
  case 1: /* random bytes behind a DHT type byte */
    len = 1 + rnd() % 1400;
    rnd_bytes(buf, len);
    buf[0] = rnd() % 2 ? HSP_DHT_TYPE_REQUEST : HSP_DHT_TYPE_RESPONSE;
    break;
  case 2: { /* bogus UDX packets: random ids and small ids, any type */
    hsp_udx_header_t h = {.type = (uint8_t)rnd(), .data_offset = (uint8_t)(rnd() % 4 ? 0 : rnd()),
                          .id = rnd() % 2 ? (uint32_t)rnd() : (uint32_t)(rnd() % 1024),
                          .rwnd = (uint32_t)rnd(), .seq = (uint32_t)rnd(), .ack = (uint32_t)rnd()};
    hsp_udx_header_encode(buf, &h);
    len = HSP_UDX_HEADER_SIZE + rnd() % 1200;
    rnd_bytes(buf + HSP_UDX_HEADER_SIZE, len - HSP_UDX_HEADER_SIZE);
    break;
  }
  case 3:
  case 4: { /* valid request, then mutated */
    long n = valid_request(buf, cap);
    len = n > 0 ? (size_t)n : 0;
    break;
  }
  case 5: { /* valid (unsolicited) response, then mutated */
    long n = valid_response(buf, cap);
    len = n > 0 ? (size_t)n : 0;
    break;
  }
  default: /* tiny datagrams (1-byte holepunch probes, empty) */
    len = rnd() % 3;
    rnd_bytes(buf, len);
  }
  switch (rnd() % 5) { /* mutation */
  case 0:
    if (len) len = rnd() % len; /* truncate */
    break;
  case 1:
    for (int k = 0; k < 3 && len; k++) buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
    break;
  case 2: { /* trailing bytes */
    size_t extra = rnd() % 64;
    if (len + extra <= cap) {
      rnd_bytes(buf + len, extra);
      len += extra;
    }
    break;
  }
  default: /* left valid */
    break;
  }
  return len;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_dht_io_flood <hyperseaport>\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  CHECK_EQ_INT(start_node(argv[1]), 0);
  if (!child_out || !node_addr.sin_port) return check_summary("test_dht_io_flood");
  ping_sock = udp_socket();
  for (int i = 0; i < SOCKS; i++) flood[i] = udp_socket();
  int warm = 0;
  for (int i = 0; i < 10; i++) warm += ping(1000);
  CHECK_EQ_INT(warm, 10);

  /* a pipe server announced on the node: relayed handshakes reach it, and afterwards a real
   * client must still get through */
  char boot[32], line[256];
  snprintf(boot, sizeof(boot), "127.0.0.1:%u", ntohs(node_addr.sin_port));
  char seed[65];
  memset(seed, '7', 64);
  seed[64] = 0;
  char *sargs[] = {argv[1], "pipe", "--listen", "--seed", seed, "--host", "127.0.0.1",
                   "--bootstrap", boot, NULL};
  server_pid = spawn(sargs, &server_out, &server_in);
  char key[80] = "";
  CHECK(server_out && fgets(key, sizeof(key), server_out) != NULL);
  key[strcspn(key, "\n")] = 0;
  uint8_t pk[32];
  CHECK(strlen(key) == 64);
  for (int i = 0; i < 32 && strlen(key) == 64; i++) {
    unsigned v;
    sscanf(key + 2 * i, "%2x", &v);
    pk[i] = (uint8_t)v;
  }
  hsp_crypto_hash(server_target, pk, 32);
  usleep(300 * 1000); /* its announce reaches the node */
  long rss0 = status_kib(child, "VmRSS"), drops0 = socket_drops();
  long srss0 = status_kib(server_pid, "VmRSS");

  uint8_t buf[2048];
  int pings = 0, answered = 0;
  uint64_t t0 = now_ms();
  for (int sent = 0; sent < PACKETS;) {
    for (int k = 0; k < BURST && sent < PACKETS; k++, sent++) {
      size_t n = garbage(buf, sizeof(buf));
      sendto(flood[sent % SOCKS], buf, n, 0, (struct sockaddr *)&node_addr, sizeof(node_addr));
    }
    /* the ping queues behind the burst: its answer means the node got through it */
    pings++;
    answered += ping(1000);
    for (int i = 0; i < SOCKS; i++) /* drain replies to the flood sockets */
      while (recv(flood[i], buf, sizeof(buf), 0) > 0) {
      }
  }
  uint64_t t1 = now_ms();
  long rss1 = status_kib(child, "VmRSS"), hwm1 = status_kib(child, "VmHWM"), drops1 = socket_drops();
  long srss1 = status_kib(server_pid, "VmRSS");
  int after = 0;
  for (int i = 0; i < 20; i++) after += ping(1000);
  usleep(500 * 1000);
  long rss2 = status_kib(child, "VmRSS");
  printf("flood: %d datagrams in %.1f s from %d ports; %d/%d pings answered during, %d/20 "
         "after; node RSS %ld -> %ld KiB (peak %ld, %ld after 0.5 s idle), kernel drops on "
         "its socket %ld\n",
         PACKETS, (double)(t1 - t0) / 1000, SOCKS, answered, pings, after, rss0, rss1, hwm1,
         rss2, drops1 >= 0 && drops0 >= 0 ? drops1 - drops0 : -1);
  CHECK_EQ_INT(answered, pings);
  CHECK_EQ_INT(after, 20);
  CHECK(rss0 > 0 && rss1 > 0);
  CHECK(rss1 - rss0 < 16 * 1024);
  CHECK(hwm1 - rss0 < 16 * 1024);
  printf("pipe server RSS %ld -> %ld KiB\n", srss0, srss1);
  CHECK(srss1 - srss0 < 16 * 1024);

  /* a real client still reaches the server through the node */
  FILE *client_out;
  int client_in;
  char *cargs[] = {argv[1], "pipe", key, "--host", "127.0.0.1", "--bootstrap", boot, NULL};
  pid_t client_pid = spawn(cargs, &client_out, &client_in);
  CHECK(write(client_in, "after the flood\n", 16) == 16);
  bool got = fgets(line, sizeof(line), server_out) != NULL;
  CHECK(got && !strcmp(line, "after the flood\n"));
  kill(client_pid, SIGTERM);
  int cstatus = 0;
  waitpid(client_pid, &cstatus, 0);
  close(client_in);
  fclose(client_out);
  kill(server_pid, SIGTERM);
  int sstatus = 0;
  waitpid(server_pid, &sstatus, 0);
  CHECK(WIFEXITED(sstatus) && WEXITSTATUS(sstatus) == 0);
  close(server_in);
  fclose(server_out);

  kill(child, SIGTERM);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  fclose(child_out);
  close(ping_sock);
  for (int i = 0; i < SOCKS; i++) close(flood[i]);
  return check_summary("test_dht_io_flood");
}
