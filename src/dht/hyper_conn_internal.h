/* Private to hyper_conn.c / hyper_connect.c. */
#ifndef HSP_DHT_HYPER_CONN_INTERNAL_H
#define HSP_DHT_HYPER_CONN_INTERNAL_H

#include "hyper_conn.h"

struct hsp_dht_conn {
  hsp_udx_stream_t stream;
  hsp_ss_t ss;
  hsp_dht_io_t *io;
  hsp_dht_io_ticker_t ticker;
  hsp_noise_result_t keys;
  bool started, ticking, ss_init;
  bool socket_held; /* connected on socket_id, which it references (pool sockets) */
  void (*on_free)(void *ctx); /* runs when the connection is freed */
  void *on_free_ctx;
  int socket_id;
  hsp_dht_conn_read_cb on_read;
  hsp_dht_conn_close_cb on_close;
  void *user;
  /* Read side paused (hsp_dht_conn_read_stop). Messages that secret-stream completed from
   * the UDX chunk being processed when the pause came wait here (at most one chunk's worth
   * plus the message it completed); the rest stays in UDX, which closes its window. */
  bool paused;
  struct hsp_dht_conn_msg *held_head, *held_tail;
  size_t held_bytes;
};

/* A raw stream with a random id, not connected yet. */
hsp_dht_conn_t *hsp_dht__conn_new(hsp_dht_io_t *io);
/* Connect the stream and start secret-stream with the handshake keys. */
int hsp_dht__conn_start(hsp_dht_conn_t *c, int socket, const hsp_ipv4_addr_t *to,
                        uint32_t remote_id, const hsp_noise_result_t *keys);

#endif
