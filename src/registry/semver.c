/*
 * node-semver 7.7.3 parses a range by rewriting its text with a series of regular
 * expressions (hyphen ranges, operator/space trimming, carets, tildes, x-ranges, stars) and
 * only then parsing plain comparators. Its quirks (for example that `=1.2.3 - 2` is invalid
 * but `=1.2` is an x-range) come from that order, so this file follows the same stages on
 * text, with hand-written matchers standing in for the anchored regular expressions.
 */
#include "semver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hsp_semver_strerror(int err) {
  switch (err) {
  case HSP_SEMVER_OK: return "ok";
  case HSP_SEMVER_EINVAL: return "invalid version or range";
  case HSP_SEMVER_ETOOLONG: return "version or range too long";
  case HSP_SEMVER_ENOMEM: return "out of memory";
  default: return "unknown semver error";
  }
}

static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_idchar(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* ---- growable string ---- */
typedef struct sb {
  char *p;
  size_t len, cap;
  bool oom;
} sb_t;

static void sb_putn(sb_t *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}
static void sb_puts(sb_t *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_clear(sb_t *b) {
  b->len = 0;
  if (b->p) b->p[0] = '\0';
}
static const char *sb_str(sb_t *b) { return b->p ? b->p : ""; }

typedef struct slice {
  const char *s;
  size_t len;
} slice_t;

static void sb_putsl(sb_t *b, slice_t s) { sb_putn(b, s.s, s.len); }

/* ---- lexical pieces shared by versions and ranges ---- */

/* Strict numeric identifier: "0" or [1-9][0-9]*. Returns its length, 0 if none. */
static size_t match_num(const char *s, size_t n, size_t i) {
  if (i >= n || !is_digit(s[i])) return 0;
  if (s[i] == '0') return 1;
  size_t j = i;
  while (j < n && is_digit(s[j])) j++;
  return j - i;
}

/* Dotted identifiers starting at i: prerelease rules (numeric ones without leading zeros)
 * when `pre`, build rules otherwise. Returns the end of the longest valid sequence, or i. */
static size_t match_ids(const char *s, size_t n, size_t i, bool pre) {
  size_t end = i, j = i;
  for (;;) {
    size_t k = j;
    bool digits = true;
    while (k < n && is_idchar(s[k])) {
      if (!is_digit(s[k])) digits = false;
      k++;
    }
    if (k == j) break;
    if (pre && digits && s[j] == '0' && k - j > 1) break;
    end = k;
    if (k < n && s[k] == '.') j = k + 1;
    else break;
  }
  return end;
}

static bool parse_u53(slice_t t, uint64_t *out) {
  if (t.len == 0 || t.len > 16) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < t.len; i++) v = v * 10 + (uint64_t)(t.s[i] - '0');
  if (v > HSP_SEMVER_MAX_SAFE) return false;
  *out = v;
  return true;
}

/* `v?MAJOR.MINOR.PATCH(-PRE)?(+BUILD)?` matching all of s[0..n). */
static int parse_full(hsp_semver_t *out, const char *s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == 'v') i++;
  slice_t part[3];
  for (int k = 0; k < 3; k++) {
    if (k > 0) {
      if (i >= n || s[i] != '.') return HSP_SEMVER_EINVAL;
      i++;
    }
    size_t l = match_num(s, n, i);
    if (!l) return HSP_SEMVER_EINVAL;
    part[k] = (slice_t){s + i, l};
    i += l;
  }
  slice_t pre = {s, 0};
  if (i < n && s[i] == '-') {
    size_t e = match_ids(s, n, i + 1, true);
    if (e == i + 1) return HSP_SEMVER_EINVAL;
    pre = (slice_t){s + i + 1, e - i - 1};
    i = e;
  }
  if (i < n && s[i] == '+') {
    size_t e = match_ids(s, n, i + 1, false);
    if (e == i + 1) return HSP_SEMVER_EINVAL;
    i = e;
  }
  if (i != n) return HSP_SEMVER_EINVAL;
  if (!parse_u53(part[0], &out->major) || !parse_u53(part[1], &out->minor) ||
      !parse_u53(part[2], &out->patch))
    return HSP_SEMVER_EINVAL;
  memcpy(out->pre, pre.s, pre.len);
  out->pre[pre.len] = '\0';
  return HSP_SEMVER_OK;
}

int hsp_semver_parse(hsp_semver_t *out, const char *text, size_t len) {
  if (len > HSP_SEMVER_MAX_LEN) return HSP_SEMVER_ETOOLONG;
  while (len && is_space(*text)) text++, len--;
  while (len && is_space(text[len - 1])) len--;
  if (!len) return HSP_SEMVER_EINVAL;
  return parse_full(out, text, len);
}

int hsp_semver_format(const hsp_semver_t *v, char *out, size_t cap) {
  int n = snprintf(out, cap, "%llu.%llu.%llu%s%s", (unsigned long long)v->major,
                   (unsigned long long)v->minor, (unsigned long long)v->patch,
                   v->pre[0] ? "-" : "", v->pre);
  return (n < 0 || (size_t)n >= cap) ? HSP_SEMVER_ETOOLONG : n;
}

static int cmp_u64(uint64_t a, uint64_t b) { return a < b ? -1 : a > b ? 1 : 0; }

/* node's compareIdentifiers: all-digit identifiers compare as numbers and sort first. */
static int cmp_ident(const char *a, size_t al, const char *b, size_t bl) {
  bool an = al > 0, bn = bl > 0;
  for (size_t i = 0; i < al; i++) an = an && is_digit(a[i]);
  for (size_t i = 0; i < bl; i++) bn = bn && is_digit(b[i]);
  if (an && bn) {
    /* no leading zeros in valid identifiers, so the longer is the larger */
    if (al != bl) return al < bl ? -1 : 1;
    int c = memcmp(a, b, al);
    return c < 0 ? -1 : c > 0;
  }
  if (an) return -1;
  if (bn) return 1;
  int c = memcmp(a, b, al < bl ? al : bl);
  if (c) return c < 0 ? -1 : 1;
  return al == bl ? 0 : al < bl ? -1 : 1;
}

int hsp_semver_compare(const hsp_semver_t *a, const hsp_semver_t *b) {
  int c = cmp_u64(a->major, b->major);
  if (!c) c = cmp_u64(a->minor, b->minor);
  if (!c) c = cmp_u64(a->patch, b->patch);
  if (c) return c;
  if (a->pre[0] && !b->pre[0]) return -1;
  if (!a->pre[0] && b->pre[0]) return 1;
  const char *p = a->pre, *q = b->pre;
  for (;;) {
    if (!*p && !*q) return 0;
    if (!*q) return 1;
    if (!*p) return -1;
    size_t pl = strcspn(p, "."), ql = strcspn(q, ".");
    c = cmp_ident(p, pl, q, ql);
    if (c) return c;
    p += pl + (p[pl] == '.');
    q += ql + (q[ql] == '.');
  }
}

/* ---- range rewriting stages ---- */

/* An x-range plain version: `[v=\s]*XID(.XID(.XID(-PRE)?(+BUILD)?)?)?` */
typedef struct xplain {
  slice_t M, m, p, pr;
  size_t start, end; /* of the whole match, prefix included */
} xplain_t;

static size_t match_xid(const char *s, size_t n, size_t i) {
  if (i < n && (s[i] == 'x' || s[i] == 'X' || s[i] == '*')) return 1;
  return match_num(s, n, i);
}

static bool match_xplain(const char *s, size_t n, size_t i, xplain_t *x) {
  memset(x, 0, sizeof *x);
  x->start = i;
  while (i < n && (s[i] == 'v' || s[i] == '=' || is_space(s[i]))) i++;
  size_t l = match_xid(s, n, i);
  if (!l) return false;
  x->M = (slice_t){s + i, l};
  i += l;
  if (i < n && s[i] == '.' && (l = match_xid(s, n, i + 1))) {
    x->m = (slice_t){s + i + 1, l};
    i += 1 + l;
    if (i < n && s[i] == '.' && (l = match_xid(s, n, i + 1))) {
      x->p = (slice_t){s + i + 1, l};
      i += 1 + l;
      if (i < n && s[i] == '-') {
        size_t e = match_ids(s, n, i + 1, true);
        if (e > i + 1) {
          x->pr = (slice_t){s + i + 1, e - i - 1};
          i = e;
        }
      }
      if (i < n && s[i] == '+') {
        size_t e = match_ids(s, n, i + 1, false);
        if (e > i + 1) i = e;
      }
    }
  }
  x->end = i;
  return true;
}

static bool is_x(slice_t t) {
  return t.len == 0 || (t.len == 1 && (t.s[0] == 'x' || t.s[0] == 'X' || t.s[0] == '*'));
}
static bool is_zero(slice_t t) { return t.len == 1 && t.s[0] == '0'; }

/* Appends the JS `+t + 1`. A result above 2^53-1 can never form a valid comparator in
 * node, so it is replaced by a character that makes the comparator fail to parse. */
static void put_inc(sb_t *b, slice_t t) {
  uint64_t v;
  if (!parse_u53(t, &v) || v + 1 > HSP_SEMVER_MAX_SAFE) {
    sb_puts(b, "!");
    return;
  }
  char num[24];
  snprintf(num, sizeof num, "%llu", (unsigned long long)(v + 1));
  sb_puts(b, num);
}

/* expand()'s format: M m p r stand for the captured parts, and + before one of them for
 * that part plus one; anything else is copied. Keeps the expansions below readable. */
static void expand(sb_t *b, const char *fmt, const xplain_t *x) {
  for (const char *f = fmt; *f; f++) {
    bool inc = false;
    if (*f == '+' && f[1]) inc = true, f++;
    const slice_t *part = NULL;
    switch (*f) {
    case 'M': part = &x->M; break;
    case 'm': part = &x->m; break;
    case 'p': part = &x->p; break;
    case 'r': part = &x->pr; break;
    default: sb_putn(b, f, 1); continue;
    }
    if (inc) put_inc(b, *part);
    else sb_putsl(b, *part);
  }
}

static void replace_caret(sb_t *out, const char *tok, size_t n) {
  xplain_t x;
  if (n < 1 || tok[0] != '^' || !match_xplain(tok, n, 1, &x) || x.end != n) {
    sb_putn(out, tok, n);
    return;
  }
  const char *f;
  if (is_x(x.M)) f = "";
  else if (is_x(x.m)) f = ">=M.0.0 <+M.0.0-0";
  else if (is_x(x.p)) f = is_zero(x.M) ? ">=M.m.0 <M.+m.0-0" : ">=M.m.0 <+M.0.0-0";
  else if (x.pr.len)
    f = !is_zero(x.M)  ? ">=M.m.p-r <+M.0.0-0"
        : is_zero(x.m) ? ">=M.m.p-r <M.m.+p-0"
                       : ">=M.m.p-r <M.+m.0-0";
  else
    f = !is_zero(x.M)  ? ">=M.m.p <+M.0.0-0"
        : is_zero(x.m) ? ">=M.m.p <M.m.+p-0"
                       : ">=M.m.p <M.+m.0-0";
  expand(out, f, &x);
}

static void replace_tilde(sb_t *out, const char *tok, size_t n) {
  xplain_t x;
  size_t i = 1;
  if (n >= 2 && tok[1] == '>') i = 2;
  if (n < 1 || tok[0] != '~' || !match_xplain(tok, n, i, &x) || x.end != n) {
    sb_putn(out, tok, n);
    return;
  }
  const char *f;
  if (is_x(x.M)) f = "";
  else if (is_x(x.m)) f = ">=M.0.0 <+M.0.0-0";
  else if (is_x(x.p)) f = ">=M.m.0 <M.+m.0-0";
  else if (x.pr.len) f = ">=M.m.p-r <M.+m.0-0";
  else f = ">=M.m.p <M.+m.0-0";
  expand(out, f, &x);
}

static size_t match_gtlt(const char *s, size_t n, size_t i) {
  size_t j = i;
  if (j < n && (s[j] == '<' || s[j] == '>')) j++;
  if (j < n && s[j] == '=') j++;
  return j - i;
}

static void replace_xrange(sb_t *out, const char *tok, size_t n) {
  xplain_t x;
  size_t gl = match_gtlt(tok, n, 0);
  size_t i = gl;
  while (i < n && is_space(tok[i])) i++;
  if (!match_xplain(tok, n, i, &x) || x.end != n) {
    sb_putn(out, tok, n);
    return;
  }
  char g[3] = {0};
  memcpy(g, tok, gl);
  bool xM = is_x(x.M), xm = xM || is_x(x.m), xp = xm || is_x(x.p);
  if (!strcmp(g, "=") && xp) g[0] = '\0';
  if (xM) {
    sb_puts(out, (!strcmp(g, ">") || !strcmp(g, "<")) ? "<0.0.0-0" : "*");
  } else if (g[0] && xp) {
    const char *f;
    if (!strcmp(g, ">")) f = xm ? ">=+M.0.0" : ">=M.+m.0";
    else if (!strcmp(g, "<=")) f = xm ? "<+M.0.0-0" : "<M.+m.0-0";
    else if (!strcmp(g, "<")) f = xm ? "<M.0.0-0" : "<M.m.0-0";
    else f = xm ? ">=M.0.0" : ">=M.m.0"; /* ">=" */
    expand(out, f, &x);
  } else if (xm) {
    expand(out, ">=M.0.0 <+M.0.0-0", &x);
  } else if (xp) {
    expand(out, ">=M.m.0 <M.+m.0-0", &x);
  } else {
    sb_putn(out, tok, n);
  }
}

/* Applies `fn` to each space-separated word of `in`, joining the results with spaces. */
static void map_words(sb_t *out, const char *in, void (*fn)(sb_t *, const char *, size_t)) {
  sb_clear(out);
  const char *s = in;
  bool first = true;
  for (;;) {
    size_t l = 0;
    while (s[l] && !is_space(s[l])) l++;
    if (!first) sb_puts(out, " ");
    first = false;
    fn(out, s, l);
    s += l;
    if (!*s) break;
    s++;
  }
}

/* Removes the first `(<|>)?=?\s?\*` (node's replaceStars), then trims. */
static void replace_stars(sb_t *out, const char *s) {
  size_t n = strlen(s);
  sb_clear(out);
  for (size_t p = 0; p < n; p++) {
    /* the regex engine's backtracking order at position p */
    for (int c = 7; c >= 0; c--) {
      size_t q = p;
      if (c & 4) {
        if (s[q] != '<' && s[q] != '>') continue;
        q++;
      }
      if (c & 2) {
        if (s[q] != '=') continue;
        q++;
      }
      if (c & 1) {
        if (!is_space(s[q])) continue;
        q++;
      }
      if (s[q] != '*') continue;
      sb_putn(out, s, p);
      sb_putn(out, s + q + 1, n - q - 1);
      return;
    }
  }
  sb_putn(out, s, n);
}

/* Parses one final comparator: `GTLT FULLPLAIN`. */
static int parse_comparator(hsp_semver_comparator_t *c, const char *s, size_t n) {
  size_t gl = match_gtlt(s, n, 0);
  if (gl == 0 || (gl == 1 && s[0] == '=')) c->op = HSP_SEMVER_EQ;
  else if (s[0] == '<') c->op = gl == 2 ? HSP_SEMVER_LE : HSP_SEMVER_LT;
  else c->op = gl == 2 ? HSP_SEMVER_GE : HSP_SEMVER_GT;
  size_t i = gl;
  while (i < n && is_space(s[i])) i++;
  if (n - i > HSP_SEMVER_MAX_LEN) return HSP_SEMVER_EINVAL;
  return parse_full(&c->v, s + i, n - i);
}

typedef struct builder {
  hsp_semver_range_t *r;
  size_t cap_c, cap_s;
} builder_t;

static int push_comp(builder_t *b, const char *s, size_t n) {
  hsp_semver_comparator_t c;
  memset(&c, 0, sizeof c);
  if (parse_comparator(&c, s, n)) return HSP_SEMVER_EINVAL;
  hsp_semver_range_t *r = b->r;
  if (r->ncomps == b->cap_c) {
    size_t cap = b->cap_c ? b->cap_c * 2 : 4;
    void *p = realloc(r->comps, cap * sizeof *r->comps);
    if (!p) return HSP_SEMVER_ENOMEM;
    r->comps = p;
    b->cap_c = cap;
  }
  r->comps[r->ncomps++] = c;
  return HSP_SEMVER_OK;
}

static int end_set(builder_t *b) {
  hsp_semver_range_t *r = b->r;
  if (r->nsets == b->cap_s) {
    size_t cap = b->cap_s ? b->cap_s * 2 : 4;
    void *p = realloc(r->set_end, cap * sizeof *r->set_end);
    if (!p) return HSP_SEMVER_ENOMEM;
    r->set_end = p;
    b->cap_s = cap;
  }
  r->set_end[r->nsets++] = r->ncomps;
  return HSP_SEMVER_OK;
}

typedef struct scratch {
  sb_t a, b, c;
} scratch_t;

/* Stage 1: a whole-set hyphen range `A - B` becomes `>=A <=B` (with x-parts widened). */
static bool hyphen(sb_t *out, const char *s, size_t n) {
  xplain_t f, t;
  if (!match_xplain(s, n, 0, &f)) return false;
  size_t i = f.end;
  if (i + 3 > n || !is_space(s[i]) || s[i + 1] != '-' || !is_space(s[i + 2])) return false;
  if (!match_xplain(s, n, i + 3, &t) || t.end != n) return false;
  sb_clear(out);
  if (is_x(f.M)) {
  } else if (is_x(f.m)) expand(out, ">=M.0.0", &f);
  else if (is_x(f.p)) expand(out, ">=M.m.0", &f);
  else {
    sb_puts(out, ">=");
    sb_putn(out, s, f.end);
  }
  sb_puts(out, " ");
  if (is_x(t.M)) {
  } else if (is_x(t.m)) expand(out, "<+M.0.0-0", &t);
  else if (is_x(t.p)) expand(out, "<M.+m.0-0", &t);
  else if (t.pr.len) expand(out, "<=M.m.p-r", &t);
  else {
    sb_puts(out, "<=");
    sb_putn(out, s + t.start, t.end - t.start);
  }
  return true;
}

/* Stage 2: drops the space in `>= 1.2`, `~ 1.2`, `~> 1.2`, `^ 1.2`. */
static void trim_operators(sb_t *out, const char *s, size_t n) {
  sb_clear(out);
  for (size_t i = 0; i < n;) {
    if (s[i] == '<' || s[i] == '>' || s[i] == '=') {
      size_t j = i + match_gtlt(s, n, i);
      if (j == i) j = i + 1; /* a lone '=' */
      sb_putn(out, s + i, j - i);
      if (j < n && is_space(s[j])) {
        size_t k = j + 1;
        while (k < n && (s[k] == 'v' || s[k] == '=' || is_space(s[k]))) k++;
        if (k < n && (is_digit(s[k]) || s[k] == 'x' || s[k] == 'X' || s[k] == '*')) j++;
      }
      i = j;
      continue;
    }
    sb_putn(out, s + i, 1);
    i++;
  }
}

static void trim_tilde_caret(sb_t *out, const char *s) {
  sb_clear(out);
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    if (s[i] == '~' && i + 2 < n && s[i + 1] == '>' && is_space(s[i + 2])) {
      sb_puts(out, "~");
      i += 3;
    } else if ((s[i] == '~' || s[i] == '^') && i + 1 < n && is_space(s[i + 1])) {
      sb_putn(out, s + i, 1);
      i += 2;
    } else {
      sb_putn(out, s + i, 1);
      i++;
    }
  }
}

/* Strips the first `+BUILD` anywhere in the word (node's parseComparator does). */
static void strip_build(sb_t *out, const char *s, size_t n) {
  sb_clear(out);
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') {
      size_t e = match_ids(s, n, i + 1, false);
      if (e > i + 1) {
        sb_putn(out, s, i);
        sb_putn(out, s + e, n - e);
        return;
      }
    }
  }
  sb_putn(out, s, n);
}

static int parse_word(builder_t *bd, scratch_t *sc, const char *w, size_t n) {
  sb_t *a = &sc->a, *b = &sc->b;
  strip_build(a, w, n);
  sb_clear(b);
  replace_caret(b, sb_str(a), a->len);
  map_words(a, sb_str(b), replace_tilde);
  map_words(b, sb_str(a), replace_xrange);
  replace_stars(a, sb_str(b));
  if (a->oom || b->oom) return HSP_SEMVER_ENOMEM;
  const char *s = sb_str(a);
  for (;;) {
    while (*s && is_space(*s)) s++;
    if (!*s) break;
    size_t l = 0;
    while (s[l] && !is_space(s[l])) l++;
    bool gte0 = l == 7 && !memcmp(s, ">=0.0.0", 7);
    if (!gte0) {
      int err = push_comp(bd, s, l);
      if (err) return err;
    }
    s += l;
  }
  return HSP_SEMVER_OK;
}

static int parse_set(builder_t *bd, scratch_t *sc, const char *s, size_t n) {
  sb_t *a = &sc->a, *c = &sc->c;
  sb_t h = {0};
  if (hyphen(&h, s, n)) {
    const char *p = sb_str(&h);
    size_t l = h.len;
    while (l && is_space(*p)) p++, l--;
    while (l && is_space(p[l - 1])) l--;
    trim_operators(a, p, l);
  } else {
    trim_operators(a, s, n);
  }
  free(h.p);
  if (h.oom) return HSP_SEMVER_ENOMEM;
  trim_tilde_caret(c, sb_str(a));
  if (a->oom || c->oom) return HSP_SEMVER_ENOMEM;
  /* words are parsed from a copy: parse_word reuses the scratch buffers */
  char *words = malloc(c->len + 1);
  if (!words) return HSP_SEMVER_ENOMEM;
  memcpy(words, sb_str(c), c->len + 1);
  int err = HSP_SEMVER_OK;
  for (char *w = words; *w && !err;) {
    size_t l = strcspn(w, " ");
    if (l) err = parse_word(bd, sc, w, l);
    w += l;
    if (*w) w++;
  }
  free(words);
  return err ? err : end_set(bd);
}

void hsp_semver_range_free(hsp_semver_range_t *r) {
  free(r->comps);
  free(r->set_end);
  memset(r, 0, sizeof *r);
}

int hsp_semver_range_parse(hsp_semver_range_t *out, const char *text, size_t len) {
  memset(out, 0, sizeof *out);
  if (len > HSP_SEMVER_RANGE_MAX_LEN) return HSP_SEMVER_ETOOLONG;
  /* trim and collapse whitespace runs to one space, as node does first */
  char raw[HSP_SEMVER_RANGE_MAX_LEN + 1];
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '\0') return HSP_SEMVER_EINVAL;
    if (is_space(text[i])) {
      if (n && raw[n - 1] != ' ') raw[n++] = ' ';
    } else {
      raw[n++] = text[i];
    }
  }
  if (n && raw[n - 1] == ' ') n--;
  raw[n] = '\0';

  builder_t bd = {out, 0, 0};
  scratch_t sc = {{0}, {0}, {0}};
  int err = HSP_SEMVER_OK;
  const char *p = raw;
  for (;;) {
    const char *bar = strstr(p, "||");
    size_t l = bar ? (size_t)(bar - p) : strlen(p);
    const char *q = p;
    while (l && *q == ' ') q++, l--;
    while (l && q[l - 1] == ' ') l--;
    err = parse_set(&bd, &sc, q, l);
    if (err || !bar) break;
    p = bar + 2;
  }
  free(sc.a.p);
  free(sc.b.p);
  free(sc.c.p);
  if (err) hsp_semver_range_free(out);
  return err;
}

static bool comp_test(const hsp_semver_comparator_t *c, const hsp_semver_t *v) {
  int r = hsp_semver_compare(v, &c->v);
  switch (c->op) {
  case HSP_SEMVER_LT: return r < 0;
  case HSP_SEMVER_LE: return r <= 0;
  case HSP_SEMVER_GT: return r > 0;
  case HSP_SEMVER_GE: return r >= 0;
  default: return r == 0;
  }
}

bool hsp_semver_range_test(const hsp_semver_range_t *r, const hsp_semver_t *v) {
  size_t begin = 0;
  for (size_t s = 0; s < r->nsets; begin = r->set_end[s], s++) {
    size_t end = r->set_end[s];
    bool ok = true;
    for (size_t i = begin; i < end && ok; i++) ok = comp_test(&r->comps[i], v);
    if (!ok) continue;
    if (!v->pre[0]) return true;
    /* A prerelease only matches when the set itself names a prerelease of the same
     * major.minor.patch, so `^1.0.0` never picks up `2.0.0-beta`. */
    for (size_t i = begin; i < end; i++) {
      const hsp_semver_t *a = &r->comps[i].v;
      if (a->pre[0] && a->major == v->major && a->minor == v->minor && a->patch == v->patch)
        return true;
    }
  }
  return false;
}

bool hsp_semver_satisfies(const char *version, const char *range) {
  hsp_semver_t v;
  hsp_semver_range_t r;
  if (hsp_semver_parse(&v, version, strlen(version))) return false;
  if (hsp_semver_range_parse(&r, range, strlen(range))) return false;
  bool ok = hsp_semver_range_test(&r, &v);
  hsp_semver_range_free(&r);
  return ok;
}

long hsp_semver_max_satisfying(const char *const *versions, size_t n, const char *range) {
  hsp_semver_range_t r;
  if (hsp_semver_range_parse(&r, range, strlen(range))) return -1;
  long best = -1;
  hsp_semver_t bv, v;
  for (size_t i = 0; i < n; i++) {
    if (hsp_semver_parse(&v, versions[i], strlen(versions[i]))) continue;
    if (!hsp_semver_range_test(&r, &v)) continue;
    if (best < 0 || hsp_semver_compare(&bv, &v) < 0) {
      best = (long)i;
      bv = v;
    }
  }
  hsp_semver_range_free(&r);
  return best;
}
