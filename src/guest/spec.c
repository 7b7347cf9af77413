/* spec.c: parsing strata-init's kernel command line and workload spec (see spec.h). */
#include "spec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

static void fail(char* err, size_t errlen, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- base64 ------------------------------------------------------------------------------ */
static int b64val(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

long strata_base64_decode(const char* in, char** out) {
  size_t n = strlen(in);
  while (n > 0 && in[n - 1] == '=') n--;
  if (n % 4 == 1) return -1;
  char* buf = malloc(n / 4 * 3 + 3 + 1);
  if (!buf) return -1;
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64val((unsigned char)in[i]);
    if (v < 0) {
      free(buf);
      return -1;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  buf[o] = 0;
  *out = buf;
  return (long)o;
}

/* ---- a small JSON reader for the workload spec --------------------------------------------- */
struct json {
  const char* start;
  const char* p;
  const char* end;
  char* err;
  size_t errlen;
};

static void ws(struct json* j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int jfail(struct json* j, const char* what) {
  fail(j->err, j->errlen, "workload spec (strata.cmd): %s at byte %ld", what, (long)(j->p - j->start));
  return -1;
}

static void put_utf8(char* o, size_t* n, unsigned cp) {
  if (cp < 0x80) {
    o[(*n)++] = (char)cp;
  } else if (cp < 0x800) {
    o[(*n)++] = (char)(0xc0 | (cp >> 6));
    o[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    o[(*n)++] = (char)(0xe0 | (cp >> 12));
    o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else {
    o[(*n)++] = (char)(0xf0 | (cp >> 18));
    o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[(*n)++] = (char)(0x80 | (cp & 0x3f));
  }
}

static int hex4(const char* s, unsigned* v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    int c = (unsigned char)s[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    *v = *v * 16 + (unsigned)d;
  }
  return 0;
}

/* A string; *out is malloc'ed (NULL when out is NULL: skipped). NUL characters are refused. */
static int jstring(struct json* j, char** out) {
  ws(j);
  if (j->p >= j->end || *j->p != '"') return jfail(j, "expected a string");
  j->p++;
  char* o = malloc((size_t)(j->end - j->p) * 2 + 1); /* \uXXXX never grows; a raw byte stays one */
  if (!o) return jfail(j, "out of memory");
  size_t n = 0;
  while (j->p < j->end && *j->p != '"') {
    unsigned char c = (unsigned char)*j->p;
    if (c < 0x20) {
      free(o);
      return jfail(j, "control character in a string");
    }
    if (c != '\\') {
      o[n++] = (char)c;
      j->p++;
      continue;
    }
    if (j->end - j->p < 2) break;
    char e = j->p[1];
    j->p += 2;
    switch (e) {
      case '"': o[n++] = '"'; break;
      case '\\': o[n++] = '\\'; break;
      case '/': o[n++] = '/'; break;
      case 'b': o[n++] = '\b'; break;
      case 'f': o[n++] = '\f'; break;
      case 'n': o[n++] = '\n'; break;
      case 'r': o[n++] = '\r'; break;
      case 't': o[n++] = '\t'; break;
      case 'u': {
        unsigned cp, lo;
        if (j->end - j->p < 4 || hex4(j->p, &cp) < 0) {
          free(o);
          return jfail(j, "bad \\u escape");
        }
        j->p += 4;
        if (cp >= 0xd800 && cp < 0xdc00) {
          if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) < 0 || lo < 0xdc00 ||
              lo > 0xdfff) {
            free(o);
            return jfail(j, "unpaired surrogate");
          }
          j->p += 6;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
          free(o);
          return jfail(j, "unpaired surrogate");
        }
        if (cp == 0) {
          free(o);
          return jfail(j, "NUL character in a string");
        }
        put_utf8(o, &n, cp);
        break;
      }
      default: free(o); return jfail(j, "bad escape");
    }
  }
  if (j->p >= j->end) {
    free(o);
    return jfail(j, "unterminated string");
  }
  j->p++;
  o[n] = 0;
  if (out) *out = o;
  else free(o);
  return 0;
}

static int juint(struct json* j, unsigned* out) {
  ws(j);
  unsigned long long v = 0;
  const char* s = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
    v = v * 10 + (unsigned)(*j->p - '0');
    /* Ids as everywhere in strata: 0..INT32_MAX ((uid_t)-1 is "unchanged" to setuid). */
    if (v > 0x7fffffffULL) return jfail(j, "number out of range (0..2147483647)");
    j->p++;
  }
  if (j->p == s) return jfail(j, "expected a non-negative integer");
  *out = (unsigned)v;
  return 0;
}

static int jskip(struct json* j, int depth);

static int jexpect(struct json* j, char c) {
  ws(j);
  if (j->p >= j->end || *j->p != c) {
    char what[32];
    snprintf(what, sizeof what, "expected '%c'", c);
    return jfail(j, what);
  }
  j->p++;
  return 0;
}

/* Is the next non-space character c? (Consumes it when it is.) */
static int jpeek(struct json* j, char c) {
  ws(j);
  if (j->p < j->end && *j->p == c) {
    j->p++;
    return 1;
  }
  return 0;
}

static int jskip(struct json* j, int depth) {
  ws(j);
  if (depth > 32) return jfail(j, "nested too deeply");
  if (j->p >= j->end) return jfail(j, "unexpected end");
  char c = *j->p;
  if (c == '"') return jstring(j, NULL);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    j->p++;
    if (jpeek(j, close)) return 0;
    do {
      if (c == '{') {
        if (jstring(j, NULL) < 0 || jexpect(j, ':') < 0) return -1;
      }
      if (jskip(j, depth + 1) < 0) return -1;
    } while (jpeek(j, ','));
    return jexpect(j, close);
  }
  const char* s = j->p;
  while (j->p < j->end && (strchr("+-.eE", *j->p) || (*j->p >= '0' && *j->p <= '9') || (*j->p >= 'a' && *j->p <= 'z')))
    j->p++;
  if (j->p == s) return jfail(j, "unexpected character");
  return 0;
}

/* An array of strings into a NULL-terminated vector. */
static int jstrings(struct json* j, char*** out) {
  if (jexpect(j, '[') < 0) return -1;
  size_t n = 0, cap = 8;
  char** v = calloc(cap, sizeof *v);
  if (!v) return jfail(j, "out of memory");
  if (!jpeek(j, ']')) {
    do {
      if (n + 2 > cap) {
        cap *= 2;
        char** nv = realloc(v, cap * sizeof *v);
        if (!nv) return jfail(j, "out of memory");
        v = nv;
      }
      if (jstring(j, &v[n]) < 0) return -1;
      v[++n] = NULL;
    } while (jpeek(j, ','));
    if (jexpect(j, ']') < 0) return -1;
  }
  v[n] = NULL;
  *out = v;
  return 0;
}

static int parse_workload(const char* text, size_t len, struct strata_spec* s, char* err, size_t errlen) {
  struct json j = {text, text, text + len, err, errlen};
  if (jexpect(&j, '{') < 0) return -1;
  if (!jpeek(&j, '}')) {
    do {
      char* key;
      if (jstring(&j, &key) < 0 || jexpect(&j, ':') < 0) return -1;
      int r;
      if (!strcmp(key, "args")) r = jstrings(&j, &s->args);
      else if (!strcmp(key, "env")) r = jstrings(&j, &s->env);
      else if (!strcmp(key, "cwd")) r = jstring(&j, &s->cwd);
      else if (!strcmp(key, "uid")) r = juint(&j, &s->uid);
      else if (!strcmp(key, "gid")) r = juint(&j, &s->gid);
      else if (!strcmp(key, "groups")) {
        r = jexpect(&j, '[');
        if (r == 0 && !jpeek(&j, ']')) {
          do {
            if (s->ngroups == STRATA_MAX_GROUPS) return jfail(&j, "more than 64 groups");
            if ((r = juint(&j, &s->groups[s->ngroups++])) < 0) break;
          } while (jpeek(&j, ','));
          if (r == 0) r = jexpect(&j, ']');
        }
      } else r = jskip(&j, 0);
      free(key);
      if (r < 0) return -1;
    } while (jpeek(&j, ','));
    if (jexpect(&j, '}') < 0) return -1;
  }
  ws(&j);
  if (j.p != j.end) return jfail(&j, "trailing bytes after the object");
  if (!s->args || !s->args[0]) {
    fail(err, errlen, "workload spec (strata.cmd): \"args\" is missing or empty");
    return -1;
  }
  if (s->args[0][0] == 0) {
    fail(err, errlen, "workload spec (strata.cmd): args[0] is empty");
    return -1;
  }
  return 0;
}

/* ---- the command line -------------------------------------------------------------------- */

/* Next word of a kernel command line: spaces separate, double quotes group (and are dropped),
 * as the kernel's own parser does. Returns a malloc'ed word, NULL at the end. */
static char* next_word(const char** pp) {
  const char* p = *pp;
  while (*p == ' ' || *p == '\t' || *p == '\n') p++;
  if (!*p) return NULL;
  char* w = malloc(strlen(p) + 1);
  if (!w) return NULL;
  size_t n = 0;
  int quoted = 0;
  for (; *p && (quoted || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
    if (*p == '"') quoted = !quoted;
    else w[n++] = *p;
  }
  w[n] = 0;
  *pp = p;
  return w;
}

static int parse_flags(const char* opts, struct strata_spec* s, char* err, size_t errlen) {
  char* copy = strdup(opts);
  char data[1024] = "";
  if (!copy) return -1;
  for (char *save = NULL, *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
    if (!strcmp(o, "ro")) s->rootflags |= MS_RDONLY;
    else if (!strcmp(o, "rw")) s->rootflags &= ~(unsigned long)MS_RDONLY;
    else if (!strcmp(o, "nosuid")) s->rootflags |= MS_NOSUID;
    else if (!strcmp(o, "nodev")) s->rootflags |= MS_NODEV;
    else if (!strcmp(o, "noexec")) s->rootflags |= MS_NOEXEC;
    else if (!strcmp(o, "noatime")) s->rootflags |= MS_NOATIME;
    else {
      if (strlen(data) + strlen(o) + 2 > sizeof data) {
        free(copy);
        fail(err, errlen, "strata.rootflags: too long");
        return -1;
      }
      if (data[0]) strcat(data, ",");
      strcat(data, o);
    }
  }
  free(copy);
  s->rootdata = data[0] ? strdup(data) : NULL;
  return 0;
}

static int valid_ipv4(const char* a) {
  struct in_addr x;
  return inet_pton(AF_INET, a, &x) == 1;
}

int strata_spec_parse(const char* cmdline, int argc, char** argv, struct strata_spec* s, char* err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->rootfstype = "ext4";
  s->rootwait_ms = 1000;
  s->iface = "eth0";
  s->prefix = -1;
  char* cmd = NULL;
  char* ip = NULL;
  const char* p = cmdline;
  char* w;
  while ((w = next_word(&p))) {
    if (!strcmp(w, "--")) { /* the rest belongs to init's argv */
      free(w);
      break;
    }
    if (strncmp(w, "strata.", 7) != 0) {
      free(w);
      continue;
    }
    char* eq = strchr(w, '=');
    if (!eq) {
      fail(err, errlen, "%s: expected strata.NAME=VALUE", w);
      return -1;
    }
    *eq = 0;
    const char* k = w + 7;
    char* v = strdup(eq + 1);
    if (!v) return -1;
    if (!strcmp(k, "root")) s->root = v;
    else if (!strcmp(k, "rootfstype")) s->rootfstype = v;
    else if (!strcmp(k, "rootflags")) {
      if (parse_flags(v, s, err, errlen) < 0) return -1;
    } else if (!strcmp(k, "rootwait")) {
      char* end;
      long ms = strtol(v, &end, 10);
      if (!*v || *end || ms < 0 || ms > 600000) {
        fail(err, errlen, "strata.rootwait=%s: want milliseconds (0..600000)", v);
        return -1;
      }
      s->rootwait_ms = (int)ms;
    } else if (!strcmp(k, "ip")) ip = v;
    else if (!strcmp(k, "gw")) s->gw = v;
    else if (!strcmp(k, "iface")) s->iface = v;
    else if (!strcmp(k, "hostname")) s->hostname = v;
    else if (!strcmp(k, "cmd")) cmd = v;
    else if (!strcmp(k, "shutdown")) {
      if (!strcmp(v, "reboot")) s->shutdown = 1;
      else if (!strcmp(v, "poweroff")) s->shutdown = 2;
      else if (strcmp(v, "auto") != 0) {
        fail(err, errlen, "strata.shutdown=%s: want auto, poweroff or reboot", v);
        return -1;
      }
    } else {
      fail(err, errlen, "unknown parameter strata.%s (see src/guest/spec.h)", k);
      return -1;
    }
    free(w);
  }

  if (s->root && s->root[0] != '/') {
    fail(err, errlen, "strata.root=%s: want a device path such as /dev/vda", s->root);
    return -1;
  }
  if (ip) {
    char* slash = strchr(ip, '/');
    char* end = NULL;
    long pre = slash ? strtol(slash + 1, &end, 10) : -1;
    if (!slash || !slash[1] || *end || pre < 0 || pre > 32) {
      fail(err, errlen, "strata.ip=%s: want ADDRESS/PREFIX, e.g. 10.0.0.2/24", ip);
      return -1;
    }
    *slash = 0;
    if (!valid_ipv4(ip)) {
      fail(err, errlen, "strata.ip=%s/%ld: not an IPv4 address", ip, pre);
      return -1;
    }
    s->ip = ip;
    s->prefix = (int)pre;
  }
  if (s->gw && (!s->ip || !valid_ipv4(s->gw))) {
    fail(err, errlen, s->ip ? "strata.gw=%s: not an IPv4 address" : "strata.gw=%s needs strata.ip", s->gw);
    return -1;
  }
  if (s->iface && (!s->iface[0] || strlen(s->iface) >= 16)) {
    fail(err, errlen, "strata.iface=%s: not an interface name", s->iface);
    return -1;
  }

  if (cmd) {
    char* json;
    long len = strata_base64_decode(cmd, &json);
    if (len < 0) {
      fail(err, errlen, "strata.cmd: not base64");
      return -1;
    }
    if ((long)strlen(json) != len) {
      fail(err, errlen, "strata.cmd: the decoded spec holds a NUL byte");
      return -1;
    }
    if (parse_workload(json, (size_t)len, s, err, errlen) < 0) return -1;
    free(json);
  } else if (argc > 1) {
    s->args = calloc((size_t)argc, sizeof *s->args);
    if (!s->args) return -1;
    for (int i = 1; i < argc; i++) s->args[i - 1] = argv[i];
  } else {
    fail(err, errlen, "no workload: give strata.cmd=BASE64(JSON) or \"-- PROGRAM ARGS\" on the kernel command line");
    return -1;
  }

  /* Defaults: cwd "/", PATH and HOME when the env lacks them. */
  if (!s->cwd) s->cwd = "/";
  size_t n = 0;
  int has_path = 0, has_home = 0;
  for (; s->env && s->env[n]; n++) {
    if (!strncmp(s->env[n], "PATH=", 5)) has_path = 1;
    if (!strncmp(s->env[n], "HOME=", 5)) has_home = 1;
  }
  char** env = calloc(n + 3, sizeof *env);
  if (!env) return -1;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) env[m++] = s->env[i];
  if (!has_path) env[m++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  if (!has_home) env[m++] = "HOME=/";
  env[m] = NULL;
  s->env = env;
  return 0;
}
