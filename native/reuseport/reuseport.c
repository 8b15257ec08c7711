// SO_REUSEPORT listening sockets for outrigger's worker threads (Node 20's `net` cannot set
// SO_REUSEPORT): each worker creates its own socket here and hands the fd to
// `net.Server.listen({fd})`, and the kernel spreads connections across the workers; the main
// thread reserves a listener's port with a bound, non-listening one until they have bound it.
// Also reads SO_ORIGINAL_DST of accepted sockets (for iptables interception). Linux only; plain
// Node-API, context-aware (NAPI_MODULE_INIT), so it loads in any number of worker threads.
// Two process-level calls ride along: exitNow (_exit) and trimMalloc (glibc's malloc_trim).

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <node_api.h>

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 // <linux/netfilter_ipv4.h>
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 // <linux/netfilter_ipv6/ip6_tables.h>
#endif

#define CHECK(call)                                                                            \
  do {                                                                                         \
    if ((call) != napi_ok) return NULL;                                                        \
  } while (0)

// "EADDRINUSE" for EADDRINUSE (glibc >= 2.32 has a table; older ones get the common cases).
static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#endif
  switch (err) {
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENOTSOCK: return "ENOTSOCK";
    default: return "EUNKNOWN";
  }
}

// Throws Error("<syscall> <what>: <strerror>") with .code = errno name and .syscall.
static void throw_errno(napi_env env, const char *syscall, const char *what, int err) {
  char msg[256];
  if (what != NULL && what[0] != '\0') {
    snprintf(msg, sizeof msg, "%s %s: %s", syscall, what, strerror(err));
  } else {
    snprintf(msg, sizeof msg, "%s: %s", syscall, strerror(err));
  }
  napi_value code, message, error, sys;
  if (napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok) {
    napi_throw_error(env, NULL, msg);
    return;
  }
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys) == napi_ok) {
    napi_set_named_property(env, error, "syscall", sys);
  }
  napi_throw(env, error);
}

// Reads argument i as an integer in [min, max]; throws a TypeError and returns 0 otherwise.
static int get_int(napi_env env, napi_value v, const char *name, int64_t min, int64_t max,
                   int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= (double)min && d <= (double)max) ||
      d != (double)(int64_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an integer in [%lld, %lld]", name, (long long)min,
             (long long)max);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

// A non-blocking, close-on-exec TCP socket with SO_REUSEPORT, bound to argv[0]:argv[1]; when
// `listening`, with SO_REUSEADDR too and listening with argv[2] as backlog. Returns the fd, or -1
// with a JavaScript exception pending.
static int open_bound(napi_env env, napi_callback_info info, int listening) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  char host[64]; // longer than any IP literal: a truncated copy is rejected below
  size_t len = 0;
  int64_t port, backlog = 0;
  if (argc < (listening ? 3u : 2u) ||
      napi_get_value_string_utf8(env, argv[0], host, sizeof host, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          listening ? "listen(host: string, port, backlog)" : "reserve(host: string, port)");
    return -1;
  }
  if (!get_int(env, argv[1], "port", 0, 65535, &port)) return -1;
  if (listening && !get_int(env, argv[2], "backlog", 1, 65535, &backlog)) return -1;

  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sslen;
  char what[96];
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  if (len < sizeof host - 1 && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sslen = sizeof *sin;
    snprintf(what, sizeof what, "%s:%d", host, (int)port);
  } else if (len < sizeof host - 1 && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    sslen = sizeof *sin6;
    snprintf(what, sizeof what, "[%s]:%d", host, (int)port);
  } else {
    char msg[128];
    snprintf(msg, sizeof msg, "host must be an IPv4 or IPv6 literal, got \"%.64s\"", host);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return -1;
  }

  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, "socket", what, errno);
    return -1;
  }
  const int one = 1, zero = 0;
  const char *failed = NULL;
  // No SO_REUSEADDR on a reservation: with it on both sides, a non-listening socket does not stop
  // another SO_REUSEADDR socket (most servers', Node's) from binding the same port.
  if (listening && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    failed = "setsockopt(SO_REUSEADDR)";
  } else if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    failed = "setsockopt(SO_REUSEPORT)";
  } else if (ss.ss_family == AF_INET6 &&
             // Dual-stack, like Node's default listen on "::" (also accepts IPv4-mapped).
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) {
    failed = "setsockopt(IPV6_V6ONLY)";
  } else if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
    failed = "bind";
  } else if (listening && listen(fd, (int)backlog) != 0) {
    failed = "listen";
  }
  if (failed != NULL) {
    int err = errno;
    close(fd);
    throw_errno(env, failed, what, err);
    return -1;
  }
  return fd;
}

// fd as a JavaScript number; NULL (the exception pending) for -1.
static napi_value fd_value(napi_env env, int fd) {
  if (fd < 0) return NULL;
  napi_value result;
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

// listen(host, port, backlog) -> fd
static napi_value Listen(napi_env env, napi_callback_info info) {
  return fd_value(env, open_bound(env, info, 1));
}

// reserve(host, port) -> fd. Bound with SO_REUSEPORT alone and not listening: it takes no
// connections, yet holds the port against every other bind and against the kernel's choice of
// local ports for outgoing connections, while SO_REUSEPORT listeners of the same user (the
// workers') can still bind it. close() it (fs.closeSync) once they have.
static napi_value Reserve(napi_env env, napi_callback_info info) {
  return fd_value(env, open_bound(env, info, 0));
}

static int get_fd(napi_env env, napi_callback_info info, int *fd) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t v;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be an integer");
    return 0;
  }
  if (!get_int(env, argv[0], "fd", 0, 0x7fffffff, &v)) return 0;
  *fd = (int)v;
  return 1;
}

// localPort(fd) -> port
static napi_value LocalPort(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd(env, info, &fd)) return NULL;
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
    throw_errno(env, "getsockname", NULL, errno);
    return NULL;
  }
  int port;
  if (ss.ss_family == AF_INET) {
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  } else {
    throw_errno(env, "getsockname", "(not an IP socket)", EAFNOSUPPORT);
    return NULL;
  }
  napi_value result;
  CHECK(napi_create_int32(env, port, &result));
  return result;
}

// dup(fd) -> fd. A second, close-on-exec descriptor of the same socket: a listener rebound by a
// reload listens on it, so the socket (and the connections queued in its accept backlog) outlives
// the old listener's close() of its own descriptor.
static napi_value Dup(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd(env, info, &fd)) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    throw_errno(env, "fcntl", "(F_DUPFD_CLOEXEC)", errno);
    return NULL;
  }
  return fd_value(env, copy);
}

// originalDst(fd) -> {address, port} | null. The destination the client dialled before an
// iptables REDIRECT/DNAT; null when the connection was not redirected (no conntrack entry,
// conntrack not loaded, or the original destination is the socket's own local address).
static napi_value OriginalDst(napi_env env, napi_callback_info info) {
  int fd;
  if (!get_fd(env, info, &fd)) return NULL;
  struct sockaddr_storage local, orig;
  socklen_t locallen = sizeof local, origlen = sizeof orig;
  memset(&orig, 0, sizeof orig);
  if (getsockname(fd, (struct sockaddr *)&local, &locallen) != 0) {
    throw_errno(env, "getsockname", NULL, errno);
    return NULL;
  }
  const struct sockaddr_in6 *l6 = (const struct sockaddr_in6 *)&local;
  // An IPv4 connection (also one accepted on a dual-stack "::" socket) is tracked as IPv4.
  int v4 = local.ss_family == AF_INET ||
           (local.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&l6->sin6_addr));
  int rc = v4 ? getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &origlen)
              : getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &origlen);
  napi_value result;
  if (rc != 0) {
    if (errno == ENOENT || errno == ENOPROTOOPT) {
      CHECK(napi_get_null(env, &result));
      return result;
    }
    throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", NULL, errno);
    return NULL;
  }

  char addr[INET6_ADDRSTRLEN];
  int port;
  int same;
  if (orig.ss_family == AF_INET) {
    const struct sockaddr_in *o4 = (const struct sockaddr_in *)&orig;
    inet_ntop(AF_INET, &o4->sin_addr, addr, sizeof addr);
    port = ntohs(o4->sin_port);
    if (local.ss_family == AF_INET) {
      const struct sockaddr_in *l4 = (const struct sockaddr_in *)&local;
      same = l4->sin_addr.s_addr == o4->sin_addr.s_addr && l4->sin_port == o4->sin_port;
    } else { // v4-mapped local address: its last 4 bytes are the IPv4 address
      same = memcmp(&l6->sin6_addr.s6_addr[12], &o4->sin_addr, 4) == 0 &&
             l6->sin6_port == o4->sin_port;
    }
  } else if (orig.ss_family == AF_INET6) {
    const struct sockaddr_in6 *o6 = (const struct sockaddr_in6 *)&orig;
    inet_ntop(AF_INET6, &o6->sin6_addr, addr, sizeof addr);
    port = ntohs(o6->sin6_port);
    same = local.ss_family == AF_INET6 &&
           memcmp(&l6->sin6_addr, &o6->sin6_addr, sizeof o6->sin6_addr) == 0 &&
           l6->sin6_port == o6->sin6_port;
  } else {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  if (same) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  napi_value address, portv;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_string_utf8(env, addr, NAPI_AUTO_LENGTH, &address));
  CHECK(napi_create_int32(env, port, &portv));
  CHECK(napi_set_named_property(env, result, "address", address));
  CHECK(napi_set_named_property(env, result, "port", portv));
  return result;
}

// exitNow(code): _exit(2) at once — no atexit handlers, no teardown of worker threads. For a
// process whose worker is stuck with uWS sockets open: Node's normal exit terminates that
// worker, and a thread that ends with uWS sockets open aborts the process.
static napi_value ExitNow(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t code = 1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1) {
    napi_get_value_int64(env, argv[0], &code);
  }
  _exit((int)(code & 0xff));
  return NULL;
}

// trimMalloc(): glibc's malloc_trim(0), which hands the free pages inside every thread's malloc
// arena back to the kernel (not only the top of the main heap, as free() does by itself): what
// start-up, config checks and the once-a-second stats messages freed stays resident otherwise.
// Returns whether any memory was released; false without glibc.
static napi_value TrimMalloc(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __GLIBC__
  int released = malloc_trim(0);
#else
  int released = 0;
#endif
  napi_value result;
  CHECK(napi_get_boolean(env, released != 0, &result));
  return result;
}

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"listen", NULL, Listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reserve", NULL, Reserve, NULL, NULL, NULL, napi_enumerable, NULL},
      {"localPort", NULL, LocalPort, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dup", NULL, Dup, NULL, NULL, NULL, napi_enumerable, NULL},
      {"originalDst", NULL, OriginalDst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"exitNow", NULL, ExitNow, NULL, NULL, NULL, napi_enumerable, NULL},
      {"trimMalloc", NULL, TrimMalloc, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) {
    return NULL;
  }
  return exports;
}
