// getOriginalDestination(fd): the address a NATed (REDIRECT/DNAT) TCP connection was originally sent to,
// read from conntrack via getsockopt(SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).
#include <napi.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

namespace {

struct Destination {
  std::string address;
  int port;
  int family;
};

// Result of a lookup: found, not NATed (ENOENT), or a failure errno.
enum class Outcome { Found, None, Failed };

const char* ErrnoName(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ENOTCONN: return "ENOTCONN";
    default: return nullptr;
  }
}

std::string ErrnoText(int err) {
  const char* name = ErrnoName(err);
  std::string text = name ? name : "errno " + std::to_string(err);
  return text + " (" + std::strerror(err) + ")";
}

bool IsV4Mapped(const sockaddr_in6& sa) { return IN6_IS_ADDR_V4MAPPED(&sa.sin6_addr); }

Outcome OriginalDstV4(int fd, Destination* out, int* err) {
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) != 0) {
    *err = errno;
    return *err == ENOENT ? Outcome::None : Outcome::Failed;
  }
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
  *out = {text, ntohs(sa.sin_port), 4};
  return Outcome::Found;
}

Outcome OriginalDstV6(int fd, Destination* out, int* err) {
  sockaddr_in6 sa{};
  socklen_t len = sizeof(sa);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &sa, &len) != 0) {
    *err = errno;
    return *err == ENOENT ? Outcome::None : Outcome::Failed;
  }
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &sa.sin6_addr, text, sizeof(text));
  *out = {text, ntohs(sa.sin6_port), 6};
  return Outcome::Found;
}

// Chooses the lookup by the socket's own family; an AF_INET6 socket carrying an IPv4 connection
// (v4-mapped local address, dual-stack listener) was NATed by the IPv4 conntrack, so SOL_IP applies.
Outcome OriginalDst(int fd, Destination* out, int* err) {
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    *err = errno;
    return Outcome::Failed;
  }
  if (local.ss_family == AF_INET) return OriginalDstV4(fd, out, err);
  if (local.ss_family != AF_INET6) {
    *err = EAFNOSUPPORT;
    return Outcome::Failed;
  }
  if (IsV4Mapped(*reinterpret_cast<sockaddr_in6*>(&local))) return OriginalDstV4(fd, out, err);
  return OriginalDstV6(fd, out, err);
}

Napi::Value GetOriginalDestination(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "getOriginalDestination(fd): fd must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Destination dst;
  int err = 0;
  switch (OriginalDst(fd, &dst, &err)) {
    case Outcome::None:
      return env.Null();
    case Outcome::Failed:
      Napi::Error::New(env, "getsockopt(SO_ORIGINAL_DST) failed: " + ErrnoText(err)).ThrowAsJavaScriptException();
      return env.Undefined();
    case Outcome::Found:
      break;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("address", dst.address);
  result.Set("port", dst.port);
  result.Set("family", dst.family);
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("getOriginalDestination", Napi::Function::New(env, GetOriginalDestination));
  return exports;
}

}  // namespace

NODE_API_MODULE(original_dst, Init)
