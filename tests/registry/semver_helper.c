/*
 * stdin lines, fields separated by tabs:
 *   S <version> <range>        -> "1" or "0" (satisfies)
 *   M <range> <v1> <v2> ...    -> index of maxSatisfying, or -1
 *   C <a> <b>                  -> compare (-1/0/1), or "E" if either is invalid
 * Inside fields, a backslash-t stands for a tab and two backslashes for one backslash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "semver.h"

#define MAX_FIELDS 256

static void unescape(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r == '\\' && (r[1] == 't' || r[1] == '\\')) {
      *w++ = r[1] == 't' ? '\t' : '\\';
      r++;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

int main(void) {
  static char line[1 << 16];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = '\0';
    const char *f[MAX_FIELDS];
    size_t n = 0;
    for (char *p = line; n < MAX_FIELDS;) {
      f[n++] = p;
      char *t = strchr(p, '\t');
      if (!t) break;
      *t = '\0';
      p = t + 1;
    }
    for (size_t i = 0; i < n; i++) unescape((char *)f[i]);
    if (f[0][0] == 'S' && n == 3) {
      printf("%d\n", hsp_semver_satisfies(f[1], f[2]) ? 1 : 0);
    } else if (f[0][0] == 'M' && n >= 2) {
      printf("%ld\n", hsp_semver_max_satisfying(f + 2, n - 2, f[1]));
    } else if (f[0][0] == 'C' && n == 3) {
      hsp_semver_t a, b;
      if (hsp_semver_parse(&a, f[1], strlen(f[1])) || hsp_semver_parse(&b, f[2], strlen(f[2])))
        printf("E\n");
      else
        printf("%d\n", hsp_semver_compare(&a, &b));
    } else {
      printf("?\n");
    }
  }
  return 0;
}
