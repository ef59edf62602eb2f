/* The open bridges of a service or proxy, so that stopping can close them all. */
#ifndef HSP_AGENT_LINKS_H
#define HSP_AGENT_LINKS_H

#include <stdlib.h>

#include "bridge.h"

typedef struct hsp_agent_links {
  hsp_agent_bridge_t **v;
  size_t n, cap;
} hsp_agent_links_t;

static inline int hsp_agent_links_add(hsp_agent_links_t *l, hsp_agent_bridge_t *b) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    void *p = realloc(l->v, cap * sizeof *l->v);
    if (!p) return -1;
    l->v = p;
    l->cap = cap;
  }
  l->v[l->n++] = b;
  return 0;
}

static inline void hsp_agent_links_remove(hsp_agent_links_t *l, hsp_agent_bridge_t *b) {
  for (size_t i = 0; i < l->n; i++)
    if (l->v[i] == b) {
      l->v[i] = l->v[--l->n];
      return;
    }
}

static inline void hsp_agent_links_close_all(hsp_agent_links_t *l) {
  /* closing completes later (done callbacks remove entries): iterate over a snapshot */
  for (size_t i = l->n; i-- > 0;)
    if (i < l->n) hsp_agent_bridge_close(l->v[i]);
}

#endif
