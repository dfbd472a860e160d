// A relay that copies bytes between pairs of connected TCP sockets with splice(2) (socket -> pipe ->
// socket, no copy through user space), on ONE background thread with its own epoll instance.
//
// Ownership: the socket fds belong to libuv (Node's net.Socket). The relay thread never closes them; it
// only adds them to its own epoll set, and on completion removes them, closes its pipes and reports. JS
// then destroys the sockets (which closes the fds). cancel()/cancelAll() are synchronous: when they return,
// the thread no longer touches the pair's fds, so JS may close them right away.
//
// Per pair, per direction: from-socket -> pipe -> to-socket. EOF from one side with its pipe drained ->
// shutdown(other, SHUT_WR). The pair is done when both directions reached EOF and drained. Any error on
// one side ends the pair; SO_LINGER {1, 0} is then set on both sockets so that JS's close() resets them.
//
// Completion reaches JS through a threadsafe function: { id, bytesClientToUpstream, bytesUpstreamToClient,
// error, side }. The threadsafe function is referenced only while pairs are active, so an idle relay never
// keeps the process alive; the thread starts on first use, so loading the addon costs nothing.
#include <node_api.h>

#include <cerrno>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace {

const char* ErrnoName(int err) {
  switch (err) {
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNABORTED: return "ECONNABORTED";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ENETDOWN: return "ENETDOWN";
    case EHOSTDOWN: return "EHOSTDOWN";
    case ENOTCONN: return "ENOTCONN";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EPERM: return "EPERM";
    case EIO: return "EIO";
    case EPROTO: return "EPROTO";
    case ECANCELED: return "ECANCELED";
    default: return nullptr;
  }
}

std::string ErrnoCode(int err) {
  const char* name = ErrnoName(err);
  return name ? name : "errno " + std::to_string(err);
}

enum Side : int { kClient = 0, kUpstream = 1, kNoSide = 2 };

struct Pair;

// What an epoll event points at: one socket of a pair.
struct Endpoint {
  Pair* pair;
  Side side;
  int fd;
};

struct Direction {
  int from;
  int to;
  int pipeRead = -1;
  int pipeWrite = -1;
  size_t inPipe = 0;
  uint64_t bytesRead = 0;
  uint64_t bytesWritten = 0;
  bool eof = false;
  bool shutDown = false;
  Side fromSide;
  Side toSide;
};

struct Pair {
  double id;
  Endpoint ends[2];
  Direction c2u;  // client -> upstream
  Direction u2c;  // upstream -> client
  bool finished = false;
};

struct Report {
  double id;
  double bytesClientToUpstream;
  double bytesUpstreamToClient;
  int err;  // 0: completed normally
  Side side;
};

struct Command {
  enum Kind { Add, Cancel, CancelAll, Stop } kind;
  Pair* pair = nullptr;  // Add
  double id = 0;         // Cancel
  uint64_t seq = 0;      // Cancel/CancelAll: acknowledged through `done`
};

constexpr size_t kPipeCapacity = 64 * 1024;  // Linux's default pipe size (16 pages)

class Relay {
 public:
  ~Relay() { Stop(); }

  // JS thread. Returns false with errno when the thread could not start.
  // JS thread. Every call replaces the callback (one addon instance can be shared by several module
  // instances, e.g. jest's per-file registries). Returns false with errno when the thread could not start.
  bool Start(napi_env env, napi_value callback) {
    if (callback_ != nullptr) napi_delete_reference(env, callback_);
    napi_create_reference(env, callback, 1, &callback_);
    if (started_) return true;
    eventFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epollFd_ = epoll_create1(EPOLL_CLOEXEC);
    if (eventFd_ < 0 || epollFd_ < 0) return Fail();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the wake-up eventfd
    if (epoll_ctl(epollFd_, EPOLL_CTL_ADD, eventFd_, &ev) != 0) return Fail();
    napi_value name;
    napi_create_string_utf8(env, "spliceRelay", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, this, OnFinalize, this, CallJs,
                                        &tsfn_) != napi_ok) {
      errno = EINVAL;
      return Fail();
    }
    napi_unref_threadsafe_function(env, tsfn_);
    thread_ = std::thread([this] { Run(); });
    started_ = true;
    return true;
  }

  bool started() const { return started_; }

  // JS thread. Creates the pipes here so that a failure is reported synchronously (JS then falls back).
  bool Add(napi_env env, int clientFd, int upstreamFd, double* id, int* err) {
    if (dead_.load()) return *err = EPIPE, false;  // the thread is gone: JS falls back to streams
    int c2u[2], u2c[2];
    if (pipe2(c2u, O_NONBLOCK | O_CLOEXEC) != 0) return *err = errno, false;
    if (pipe2(u2c, O_NONBLOCK | O_CLOEXEC) != 0) {
      *err = errno;
      close(c2u[0]);
      close(c2u[1]);
      return false;
    }
    Pair* pair = new Pair();
    pair->id = *id = ++nextId_;
    pair->ends[kClient] = {pair, kClient, clientFd};
    pair->ends[kUpstream] = {pair, kUpstream, upstreamFd};
    pair->c2u.from = clientFd;
    pair->c2u.to = upstreamFd;
    pair->c2u.fromSide = kClient;
    pair->c2u.toSide = kUpstream;
    pair->c2u.pipeRead = c2u[0];
    pair->c2u.pipeWrite = c2u[1];
    pair->u2c.from = upstreamFd;
    pair->u2c.to = clientFd;
    pair->u2c.fromSide = kUpstream;
    pair->u2c.toSide = kClient;
    pair->u2c.pipeRead = u2c[0];
    pair->u2c.pipeWrite = u2c[1];
    if (active_++ == 0) napi_ref_threadsafe_function(env, tsfn_);
    Post({Command::Add, pair, 0, 0});
    return true;
  }

  // JS thread: returns once the thread has let go of the pair (or of all pairs).
  void Cancel(double id) { PostAndWait({Command::Cancel, nullptr, id, 0}); }
  void CancelAll() { PostAndWait({Command::CancelAll, nullptr, 0, 0}); }

  double active() const { return active_; }

 private:
  bool Fail() {
    int err = errno;
    if (eventFd_ >= 0) close(eventFd_);
    if (epollFd_ >= 0) close(epollFd_);
    eventFd_ = epollFd_ = -1;
    errno = err;
    return false;
  }

  void Post(Command command) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      commands_.push_back(command);
    }
    uint64_t one = 1;
    ssize_t ignored = write(eventFd_, &one, sizeof(one));
    (void)ignored;
  }

  void PostAndWait(Command command) {
    if (!started_ || stopped_ || dead_.load()) return;
    std::unique_lock<std::mutex> lock(mutex_);
    command.seq = ++posted_;
    commands_.push_back(command);
    uint64_t one = 1;
    ssize_t ignored = write(eventFd_, &one, sizeof(one));
    (void)ignored;
    acknowledged_cv_.wait(lock, [&] { return acknowledged_ >= command.seq || dead_.load(); });
  }

  // Env teardown (threadsafe function finalized) or destructor: stop the thread, free what is left.
  void Stop() {
    if (!started_ || stopped_) return;
    stopped_ = true;
    Post({Command::Stop, nullptr, 0, 0});
    if (thread_.joinable()) thread_.join();
    close(eventFd_);
    close(epollFd_);
  }

  static void OnFinalize(napi_env, void* data, void*) { static_cast<Relay*>(data)->Stop(); }

  static void CallJs(napi_env env, napi_value, void* context, void* data) {
    Report* report = static_cast<Report*>(data);
    Relay* relay = static_cast<Relay*>(context);
    napi_value callback = nullptr;
    if (env != nullptr && relay->callback_ != nullptr) napi_get_reference_value(env, relay->callback_, &callback);
    if (env != nullptr) {
      if (--relay->active_ == 0) napi_unref_threadsafe_function(env, relay->tsfn_);
      napi_value result, value, undefined;
      napi_get_undefined(env, &undefined);
      napi_create_object(env, &result);
      napi_create_double(env, report->id, &value);
      napi_set_named_property(env, result, "id", value);
      napi_create_double(env, report->bytesClientToUpstream, &value);
      napi_set_named_property(env, result, "bytesClientToUpstream", value);
      napi_create_double(env, report->bytesUpstreamToClient, &value);
      napi_set_named_property(env, result, "bytesUpstreamToClient", value);
      if (report->err != 0) {
        std::string code = ErrnoCode(report->err);
        napi_create_string_utf8(env, code.c_str(), code.size(), &value);
      } else {
        value = undefined;
      }
      napi_set_named_property(env, result, "error", value);
      if (report->side != kNoSide) {
        napi_create_string_utf8(env, report->side == kClient ? "client" : "upstream", NAPI_AUTO_LENGTH, &value);
      } else {
        value = undefined;
      }
      napi_set_named_property(env, result, "side", value);
      if (callback != nullptr) napi_call_function(env, undefined, callback, 1, &result, nullptr);
    }
    delete report;
  }

  // ---- relay thread ----

  void Run() {
    std::vector<epoll_event> events(256);
    std::vector<Pair*> finished;
    for (;;) {
      int n = epoll_wait(epollFd_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        // Cannot happen with a valid epoll fd; leave rather than spin, and never let a cancel() wait
        // for a thread that is gone (new pairs are refused and go the streams way).
        {
          std::lock_guard<std::mutex> lock(mutex_);
          dead_.store(true);
        }
        acknowledged_cv_.notify_all();
        break;
      }
      bool stop = false;
      for (int i = 0; i < n; i++) {
        if (events[i].data.ptr == nullptr) {
          if (!Drain(&finished)) stop = true;
          continue;
        }
        Endpoint* end = static_cast<Endpoint*>(events[i].data.ptr);
        Pair* pair = end->pair;
        if (pair->finished) continue;
        if (events[i].events & EPOLLERR) {
          int err = 0;
          socklen_t len = sizeof(err);
          getsockopt(end->fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            Finish(pair, err, end->side, &finished);
            continue;
          }
        }
        Pump(pair, &finished);
      }
      for (Pair* pair : finished) delete pair;
      finished.clear();
      if (stop) break;
    }
    // Stopping (env teardown): let go of every pair without reporting; JS is gone.
    for (auto& entry : pairs_) {
      Release(entry.second);
      delete entry.second;
    }
    pairs_.clear();
  }

  // Runs queued commands; false on Stop.
  bool Drain(std::vector<Pair*>* finished) {
    uint64_t count;
    ssize_t ignored = read(eventFd_, &count, sizeof(count));
    (void)ignored;
    std::deque<Command> commands;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      commands.swap(commands_);
    }
    bool keepRunning = true;
    uint64_t acked = 0;
    for (const Command& command : commands) {
      switch (command.kind) {
        case Command::Add:
          Register(command.pair, finished);
          break;
        case Command::Cancel: {
          auto it = pairs_.find(command.id);
          if (it != pairs_.end() && !it->second->finished) Finish(it->second, ECANCELED, kNoSide, finished);
          break;
        }
        case Command::CancelAll: {
          std::vector<Pair*> all;  // Finish() erases from pairs_
          for (auto& entry : pairs_) all.push_back(entry.second);
          for (Pair* pair : all)
            if (!pair->finished) Finish(pair, ECANCELED, kNoSide, finished);
          break;
        }
        case Command::Stop:
          keepRunning = false;
          break;
      }
      if (command.seq > acked) acked = command.seq;
    }
    if (acked > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (acked > acknowledged_) acknowledged_ = acked;
      acknowledged_cv_.notify_all();
    }
    return keepRunning;
  }

  void Register(Pair* pair, std::vector<Pair*>* finished) {
    pairs_[pair->id] = pair;
    for (Side side : {kClient, kUpstream}) {
      epoll_event ev{};
      // Edge-triggered: Pump() always runs until EAGAIN (or a full pipe whose drain is also waiting for
      // an edge), so no readiness is lost; a stalled peer costs no wake-ups.
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.ptr = &pair->ends[side];
      if (epoll_ctl(epollFd_, EPOLL_CTL_ADD, pair->ends[side].fd, &ev) != 0) {
        Finish(pair, errno, side, finished);
        return;
      }
    }
    Pump(pair, finished);  // data may have arrived before registration: edges already passed
  }

  // Moves what can be moved in one direction. Returns an errno (and the failing side) or 0.
  int PumpDirection(Direction* d, Side* failed) {
    for (;;) {
      bool progress = false;
      if (d->inPipe > 0) {
        ssize_t n = splice(d->pipeRead, nullptr, d->to, nullptr, d->inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          d->inPipe -= n;
          d->bytesWritten += n;
          progress = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          *failed = d->toSide;
          return errno;
        }
      }
      if (!d->eof && d->inPipe < kPipeCapacity) {
        ssize_t n = splice(d->from, nullptr, d->pipeWrite, nullptr, kPipeCapacity - d->inPipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          d->inPipe += n;
          d->bytesRead += n;
          progress = true;
        } else if (n == 0) {
          d->eof = true;
          progress = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          *failed = d->fromSide;
          return errno;
        }
      }
      if (!progress) break;
    }
    if (d->eof && d->inPipe == 0 && !d->shutDown) {
      d->shutDown = true;
      if (shutdown(d->to, SHUT_WR) != 0) {
        *failed = d->toSide;
        return errno;
      }
    }
    return 0;
  }

  void Pump(Pair* pair, std::vector<Pair*>* finished) {
    Side failed = kNoSide;
    int err = PumpDirection(&pair->c2u, &failed);
    if (err == 0) err = PumpDirection(&pair->u2c, &failed);
    if (err != 0) return Finish(pair, err, failed, finished);
    if (pair->c2u.shutDown && pair->u2c.shutDown) Finish(pair, 0, kNoSide, finished);
  }

  void Release(Pair* pair) {
    for (Side side : {kClient, kUpstream}) epoll_ctl(epollFd_, EPOLL_CTL_DEL, pair->ends[side].fd, nullptr);
    for (Direction* d : {&pair->c2u, &pair->u2c}) {
      close(d->pipeRead);
      close(d->pipeWrite);
    }
  }

  void Finish(Pair* pair, int err, Side side, std::vector<Pair*>* finished) {
    pair->finished = true;
    Release(pair);
    if (err != 0 && err != ECANCELED) {
      // JS's close() then sends a reset on both sockets instead of a FIN.
      linger hard{1, 0};
      for (Side s : {kClient, kUpstream})
        setsockopt(pair->ends[s].fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    }
    pairs_.erase(pair->id);
    finished->push_back(pair);
    Report* report = new Report{pair->id, static_cast<double>(pair->c2u.bytesRead),
                                static_cast<double>(pair->u2c.bytesWritten), err, side};
    if (napi_call_threadsafe_function(tsfn_, report, napi_tsfn_nonblocking) != napi_ok) delete report;
  }

  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> dead_{false};  // the relay thread left its loop on an epoll failure
  int eventFd_ = -1;
  int epollFd_ = -1;
  napi_threadsafe_function tsfn_ = nullptr;
  napi_ref callback_ = nullptr;
  std::thread thread_;
  double nextId_ = 0;
  double active_ = 0;  // JS thread only: pairs added and not yet reported to JS

  std::mutex mutex_;
  std::deque<Command> commands_;
  uint64_t posted_ = 0;
  uint64_t acknowledged_ = 0;
  std::condition_variable acknowledged_cv_;

  std::unordered_map<double, Pair*> pairs_;  // relay thread only
};

Relay* GetRelay(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<Relay*>(data);
}

napi_value Throw(napi_env env, const std::string& message) {
  napi_throw_error(env, nullptr, message.c_str());
  return nullptr;
}

bool NumberArg(napi_env env, napi_callback_info info, size_t count, double* out) {
  size_t argc = count;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < count) return false;
  for (size_t i = 0; i < count; i++) {
    napi_valuetype type;
    napi_typeof(env, argv[i], &type);
    if (type != napi_number) return false;
    napi_get_value_double(env, argv[i], &out[i]);
  }
  return true;
}

// start(onDone): starts the relay thread once; onDone receives every completion report.
napi_value StartRelay(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value callback;
  napi_get_cb_info(env, info, &argc, &callback, nullptr, nullptr);
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, callback, &type);
  if (type != napi_function) return Throw(env, "start(onDone): onDone must be a function");
  Relay* relay = GetRelay(env);
  if (!relay->Start(env, callback)) return Throw(env, "splice relay: cannot start: " + ErrnoCode(errno));
  return nullptr;
}

// add(clientFd, upstreamFd): the pair's id. Throws (nothing handed over) when the pipes cannot be made.
napi_value AddPair(napi_env env, napi_callback_info info) {
  double fds[2];
  if (!NumberArg(env, info, 2, fds)) return Throw(env, "add(clientFd, upstreamFd): fds must be numbers");
  Relay* relay = GetRelay(env);
  if (!relay->started()) return Throw(env, "splice relay: add() before start()");
  double id = 0;
  int err = 0;
  if (!relay->Add(env, static_cast<int>(fds[0]), static_cast<int>(fds[1]), &id, &err))
    return Throw(env, "splice relay: pipe2 failed: " + ErrnoCode(err));
  napi_value result;
  napi_create_double(env, id, &result);
  return result;
}

napi_value CancelPair(napi_env env, napi_callback_info info) {
  double id;
  if (!NumberArg(env, info, 1, &id)) return Throw(env, "cancel(id): id must be a number");
  GetRelay(env)->Cancel(id);
  return nullptr;
}

napi_value CancelAll(napi_env env, napi_callback_info) {
  GetRelay(env)->CancelAll();
  return nullptr;
}

napi_value Active(napi_env env, napi_callback_info) {
  napi_value result;
  napi_create_double(env, GetRelay(env)->active(), &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  Relay* relay = new Relay();
  napi_set_instance_data(
      env, relay, [](napi_env, void* data, void*) { delete static_cast<Relay*>(data); }, nullptr);
  struct {
    const char* name;
    napi_callback fn;
  } functions[] = {{"start", StartRelay}, {"add", AddPair}, {"cancel", CancelPair},
                   {"cancelAll", CancelAll}, {"active", Active}};
  for (const auto& f : functions) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}

}  // namespace

NAPI_MODULE_INIT() { return Init(env, exports); }
