/* The HyperDHT connections under a session pool (dataplane.h): the proxy's and the gateway's. */
#include "dataplane.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hsp_dp_link { /* one HyperDHT connection (attempt) to an instance */
  hsp_dp_links_t *ls;  /* NULL once the pool gave it up */
  uint8_t key[32];
  hsp_dht_conn_t *conn;
  hsp_dp_link_t *next;
};

static uint64_t now_ms(hsp_dp_links_t *ls) { return uv_now(ls->loop); }

static void logk(hsp_dp_links_t *ls, const uint8_t key[32], const char *fmt, const char *what) {
  if (!ls->log) return;
  static const char hex[] = "0123456789abcdef";
  char k[9], line[512];
  for (int i = 0; i < 4; i++) {
    k[2 * i] = hex[key[i] >> 4];
    k[2 * i + 1] = hex[key[i] & 15];
  }
  k[8] = 0;
  char body[256];
  snprintf(body, sizeof body, fmt, k, what);
  snprintf(line, sizeof line, "%s: %s", ls->who ? ls->who : "dataplane", body);
  ls->log(ls->log_ud, line);
}

static hsp_dp_link_t *find_link(hsp_dp_links_t *ls, const uint8_t key[32]) {
  for (hsp_dp_link_t *l = ls->head; l; l = l->next)
    if (memcmp(l->key, key, 32) == 0) return l;
  return NULL;
}

static void unlink_link(hsp_dp_links_t *ls, hsp_dp_link_t *l) {
  for (hsp_dp_link_t **pp = &ls->head; *pp; pp = &(*pp)->next)
    if (*pp == l) {
      *pp = l->next;
      break;
    }
  l->ls = NULL;
}

static void link_read(hsp_dht_conn_t *conn, const uint8_t *buf, ssize_t len) {
  hsp_dp_link_t *l = hsp_dht_conn_user(conn);
  hsp_dp_links_t *ls = l->ls;
  if (!ls) return;
  if (len < 0) { /* the service ended the stream */
    uint8_t key[32];
    memcpy(key, l->key, 32);
    logk(ls, key, "instance %s ended the connection%s", "");
    unlink_link(ls, l);
    hsp_dht_conn_destroy(conn);
    hsp_pool_failed(ls->pool, key, now_ms(ls), HSP_SESS_EDEAD);
    return;
  }
  hsp_pool_recv(ls->pool, l->key, buf, (size_t)len, now_ms(ls));
}

static void link_close(hsp_dht_conn_t *conn, int status) {
  hsp_dp_link_t *l = hsp_dht_conn_user(conn);
  hsp_dp_links_t *ls = l->ls;
  if (ls) {
    uint8_t key[32];
    memcpy(key, l->key, 32);
    logk(ls, key, "connection to instance %s closed: %s",
         status ? hsp_dht_conn_strerror(status) : "by the service");
    unlink_link(ls, l);
    hsp_pool_failed(ls->pool, key, now_ms(ls), HSP_SESS_EDEAD);
  }
  free(l);
}

static void on_dht_connected(void *ctx, hsp_dht_conn_t *conn, int err) {
  hsp_dp_link_t *l = ctx;
  hsp_dp_links_t *ls = l->ls;
  if (!ls) { /* given up (timeout or shutdown) meanwhile */
    if (conn) {
      hsp_dht_conn_set_callbacks(conn, NULL, NULL, NULL);
      hsp_dht_conn_destroy(conn);
    }
    free(l);
    return;
  }
  if (err) {
    uint8_t key[32];
    memcpy(key, l->key, 32);
    logk(ls, key, "connect to instance %s failed: %s", hsp_dht_conn_strerror(err));
    unlink_link(ls, l);
    free(l);
    hsp_pool_failed(ls->pool, key, now_ms(ls), HSP_SESS_EDEAD);
    return;
  }
  l->conn = conn;
  hsp_dht_conn_set_callbacks(conn, link_read, link_close, l);
  hsp_pool_connected(ls->pool, l->key, now_ms(ls));
}

void hsp_dp_links_connect(hsp_dp_links_t *ls, const uint8_t key[32]) {
  hsp_dp_link_t *l = calloc(1, sizeof *l);
  if (!l) {
    hsp_pool_failed(ls->pool, key, now_ms(ls), HSP_SESS_ENOMEM);
    return;
  }
  l->ls = ls;
  memcpy(l->key, key, 32);
  l->next = ls->head;
  ls->head = l;
  int err = hsp_dht_connect(ls->io, &ls->kp, key, on_dht_connected, l);
  if (err) {
    unlink_link(ls, l);
    free(l);
    hsp_pool_failed(ls->pool, key, now_ms(ls), HSP_SESS_EDEAD);
  }
}

void hsp_dp_links_disconnect(hsp_dp_links_t *ls, const uint8_t key[32]) {
  hsp_dp_link_t *l = find_link(ls, key);
  if (!l) return;
  unlink_link(ls, l);
  if (l->conn) hsp_dht_conn_destroy(l->conn); /* link_close frees it */
  /* else: on_dht_connected frees it */
}

int hsp_dp_links_send(hsp_dp_links_t *ls, const uint8_t key[32], const uint8_t *a, size_t alen,
                      const uint8_t *b, size_t blen) {
  hsp_dp_link_t *l = find_link(ls, key);
  if (!l || !l->conn || alen + blen > HSP_DP_FRAME_MAX) return -1;
  struct iovec v[2] = {{.iov_base = (void *)a, .iov_len = alen}, {.iov_base = (void *)b, .iov_len = blen}};
  return hsp_dht_conn_writev(l->conn, v, 2, NULL, NULL) ? -1 : 0;
}

void hsp_dp_links_release(hsp_dp_links_t *ls) {
  while (ls->head) unlink_link(ls, ls->head);
}
