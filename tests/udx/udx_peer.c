/*
 * Command-line UDX endpoint for the interop tests (the C twin of udx-tools/peer.js).
 *   udx_peer --id 1 --remote-id 2 --remote-port P [--port 0] [--host 127.0.0.1]
 *            [--mode sink|source|hello] [--bytes N] [--destroy-after N] [--keepalive MS]
 *            [--seq S] [--ack A] [--send-message] [--linger-ms MS] [--exit-after-ms MS]
 * Prints JSON lines on stdout: listening {port}, sent {sha256}, end {bytes, sha256},
 * message {text}, raw {text}, close {status}. Exits 0 after the stream closes.
 */
#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "udx.h"

static uv_loop_t *loop;
static hsp_udx_t udx;
static hsp_udx_socket_t sock;
static hsp_udx_stream_t stream;
static struct sockaddr_storage remote;
static const char *mode = "sink";
static uint64_t total = 10 * 1024 * 1024, queued, rx, destroy_after;
static crypto_hash_sha256_state tx_hash, rx_hash;
static uint64_t rng = 0x243f6a8885a308d3ull;
static int ended, linger_ms = 200, send_message, fast;
#define SLOTS 64 /* 4 MiB outstanding: writes complete on ACK, so this bounds the window */
#define CHUNK 65536
static hsp_udx_write_t wreq[SLOTS + 1];
static uint8_t wbuf[SLOTS][CHUNK];
static int busy[SLOTS + 1];
static uv_timer_t exit_timer;

static void hex(const uint8_t *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void pump(void);
static void on_write(hsp_udx_write_t *req, int status) {
  busy[req - wreq] = 0;
  if (status == 0) pump();
}

static void end_stream(void) {
  if (ended || stream.closed) return;
  ended = 1;
  busy[SLOTS] = 1;
  hsp_udx_stream_write_end(&wreq[SLOTS], &stream, NULL, 0, on_write);
}

static void pump(void) {
  if (strcmp(mode, "source") != 0 || stream.closed) return;
  if (destroy_after && queued >= destroy_after && stream.write_queued_bytes == 0) {
    hsp_udx_stream_destroy(&stream);
    return;
  }
  while (queued < total) {
    int slot = -1;
    for (int i = 0; i < SLOTS; i++) {
      if (!busy[i]) slot = i;
    }
    if (slot < 0) return;
    size_t n = total - queued < CHUNK ? (size_t)(total - queued) : CHUNK;
    if (fast) {
      /* benchmark mode: constant data, no hashing, so only the transport is measured */
      memset(wbuf[slot], 0x63, n);
    } else {
      for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        wbuf[slot][i] = (uint8_t)(rng >> 32);
      }
      crypto_hash_sha256_update(&tx_hash, wbuf[slot], n);
    }
    busy[slot] = 1;
    queued += n;
    hsp_udx_stream_write(&wreq[slot], &stream, wbuf[slot], n, on_write);
    if (destroy_after && queued >= destroy_after) return;
  }
  if (!ended) {
    uint8_t d[32];
    char h[65];
    crypto_hash_sha256_final(&tx_hash, d);
    hex(d, 32, h);
    printf("{\"event\":\"sent\",\"bytes\":%llu,\"sha256\":\"%s\"}\n", (unsigned long long)total, h);
    end_stream();
  }
}

static void on_read(hsp_udx_stream_t *s, const uint8_t *buf, ssize_t len) {
  (void)s;
  if (len == HSP_UDX_EOF) {
    uint8_t d[32];
    char h[65];
    crypto_hash_sha256_final(&rx_hash, d);
    hex(d, 32, h);
    printf("{\"event\":\"end\",\"bytes\":%llu,\"sha256\":\"%s\",\"retransmits\":%llu}\n",
           (unsigned long long)rx, h, (unsigned long long)stream.stat_retransmits);
    if (strcmp(mode, "source") != 0) end_stream();
    return;
  }
  if (!fast) crypto_hash_sha256_update(&rx_hash, buf, (size_t)len);
  rx += (uint64_t)len;
  if (destroy_after && strcmp(mode, "sink") == 0 && rx >= destroy_after) {
    hsp_udx_stream_destroy(&stream);
  }
}

static void on_message(hsp_udx_stream_t *s, const uint8_t *buf, size_t len) {
  (void)s;
  printf("{\"event\":\"message\",\"text\":\"%.*s\"}\n", (int)len, (const char *)buf);
  hsp_udx_stream_send(&stream, (const uint8_t *)"message-from-c", 14);
}

static void on_raw(hsp_udx_socket_t *s, const uint8_t *buf, size_t len,
                   const struct sockaddr *from) {
  (void)s;
  int printable = len > 0 && len < 64;
  for (size_t i = 0; i < len && printable; i++) printable = buf[i] >= 32 && buf[i] < 127;
  if (printable) {
    printf("{\"event\":\"raw\",\"text\":\"%.*s\"}\n", (int)len, (const char *)buf);
    hsp_udx_socket_send(&sock, (const uint8_t *)"raw-from-c", 10, from);
  } else {
    printf("{\"event\":\"raw\",\"bytes\":%zu}\n", len);
  }
}

static void on_sock_closed(hsp_udx_socket_t *s) {
  (void)s;
  hsp_udx_deinit(&udx);
}

static void on_linger_done(uv_timer_t *t) {
  uv_close((uv_handle_t *)t, NULL);
  uv_timer_stop(&exit_timer);
  uv_close((uv_handle_t *)&exit_timer, NULL);
  hsp_udx_socket_close(&sock, on_sock_closed);
}

static uv_timer_t linger_timer;
static void on_close(hsp_udx_stream_t *s, int status) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
               ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
  printf("{\"event\":\"close\",\"status\":%d,\"error\":\"%s\",\"retransmits\":%llu,"
         "\"rto\":%llu,\"cpu_s\":%.3f,\"cwnd\":%u,\"srtt_us\":%llu,\"sent\":%llu}\n",
         status, status ? hsp_udx_strerror(status) : "", (unsigned long long)s->stat_retransmits,
         (unsigned long long)s->stat_rto_count, cpu, s->cwnd, (unsigned long long)s->srtt,
         (unsigned long long)s->stat_packets_sent);
  fflush(stdout);
  /* Stay a moment so late END retransmits from the peer are still re-ACKed. */
  uv_timer_init(loop, &linger_timer);
  uv_timer_start(&linger_timer, on_linger_done, (uint64_t)linger_ms, 0);
}

static void on_exit_timer(uv_timer_t *t) {
  (void)t;
  printf("{\"event\":\"timeout\"}\n");
  fflush(stdout);
  exit(2);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *host = "127.0.0.1";
  int port = 0, remote_port = 0, keepalive = 0, exit_after = 0;
  uint32_t id = 1, remote_id = 2;
  long long seq = -1, ack = -1;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(k, "--send-message")) {
      send_message = 1;
      continue;
    }
    if (!strcmp(k, "--fast")) {
      fast = 1;
      continue;
    }
    i++;
    if (!strcmp(k, "--id")) id = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(k, "--remote-id")) remote_id = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(k, "--port")) port = atoi(v);
    else if (!strcmp(k, "--remote-port")) remote_port = atoi(v);
    else if (!strcmp(k, "--host")) host = v;
    else if (!strcmp(k, "--mode")) mode = v;
    else if (!strcmp(k, "--bytes")) total = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--destroy-after")) destroy_after = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--keepalive")) keepalive = atoi(v);
    else if (!strcmp(k, "--seq")) seq = strtoll(v, NULL, 10);
    else if (!strcmp(k, "--ack")) ack = strtoll(v, NULL, 10);
    else if (!strcmp(k, "--linger-ms")) linger_ms = atoi(v);
    else if (!strcmp(k, "--exit-after-ms")) exit_after = atoi(v);
    else {
      fprintf(stderr, "unknown option %s\n", k);
      return 2;
    }
  }
  if (sodium_init() < 0) return 2;
  crypto_hash_sha256_init(&tx_hash);
  crypto_hash_sha256_init(&rx_hash);
  loop = uv_default_loop();
  hsp_udx_init(loop, &udx);
  hsp_udx_socket_init(&udx, &sock);
  struct sockaddr_storage local;
  int v6 = strchr(host, ':') != NULL;
  if (v6) {
    uv_ip6_addr(host, port, (struct sockaddr_in6 *)&local);
    uv_ip6_addr(host, remote_port, (struct sockaddr_in6 *)&remote);
  } else {
    uv_ip4_addr(host, port, (struct sockaddr_in *)&local);
    uv_ip4_addr(host, remote_port, (struct sockaddr_in *)&remote);
  }
  int r = hsp_udx_socket_bind(&sock, (struct sockaddr *)&local);
  if (r < 0) {
    fprintf(stderr, "bind: %s\n", hsp_udx_strerror(r));
    return 1;
  }
  struct sockaddr_storage bound;
  hsp_udx_socket_getsockname(&sock, &bound);
  int bport = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  hsp_udx_socket_recv_start(&sock, on_raw);
  hsp_udx_stream_init(&udx, &stream, id, on_close);
  if (seq >= 0) hsp_udx_stream_set_seq(&stream, (uint32_t)seq);
  if (ack >= 0) hsp_udx_stream_set_ack(&stream, (uint32_t)ack);
  hsp_udx_stream_set_message_cb(&stream, on_message);
  hsp_udx_stream_connect(&stream, &sock, remote_id, (struct sockaddr *)&remote);
  if (keepalive) hsp_udx_stream_set_keepalive(&stream, (uint32_t)keepalive);
  hsp_udx_stream_read_start(&stream, on_read);
  printf("{\"event\":\"listening\",\"port\":%d}\n", bport);
  uv_timer_init(loop, &exit_timer);
  if (exit_after) uv_timer_start(&exit_timer, on_exit_timer, (uint64_t)exit_after, 0);
  if (send_message) {
    hsp_udx_stream_send(&stream, (const uint8_t *)"message-from-c", 14);
    hsp_udx_socket_send(&sock, (const uint8_t *)"raw-from-c", 10, (struct sockaddr *)&remote);
  }
  if (!strcmp(mode, "hello")) {
    static hsp_udx_write_t hw;
    hsp_udx_stream_write(&hw, &stream, (const uint8_t *)"hello", 5, NULL);
    end_stream();
  } else {
    pump();
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
