// An AsyncWorker that runs `work` on a libuv pool thread and settles a Promise: the pattern of every long native
// call. It keeps the JS values in `keep_alive` (typed arrays whose memory `work` reads or writes, and the model)
// referenced until it finishes, and makes no N-API call inside Execute. `result` builds the resolved value from
// those same values (a napi_value captured at call time is dead by then: only the persistent references live).
#pragma once

#include <napi.h>

#include <functional>
#include <vector>

#include "core/common.h"

namespace dnft::addon {

// Throws the JS error that matches a native error's kind.
[[noreturn]] void throw_js_error(Napi::Env env, const dnft::Error& error);
Napi::Error make_js_error(Napi::Env env, const std::string& message, const char* code);

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Result = std::function<Napi::Value(Napi::Env, const std::vector<Napi::Value>& kept)>;

  // Queues the worker and returns its promise.
  static Napi::Promise Run(Napi::Env env, std::vector<Napi::Value> keep_alive, Work work, Result result);

 private:
  PromiseWorker(Napi::Env env, std::vector<Napi::Value> keep_alive, Work work, Result result);
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

  Napi::Promise::Deferred deferred_;
  std::vector<Napi::Reference<Napi::Value>> keep_alive_;
  Work work_;
  Result result_;
  dnft::Error::Kind error_kind_ = dnft::Error::Kind::kBackend;
  bool native_error_ = false;
};

}  // namespace dnft::addon
