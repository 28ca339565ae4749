#include "addon/promise_worker.h"

namespace dnft::addon {

namespace {

const char* error_code(dnft::Error::Kind kind) {
  switch (kind) {
    case dnft::Error::Kind::kType:
      return "DNFT_TYPE";
    case dnft::Error::Kind::kRange:
      return "DNFT_RANGE";
    case dnft::Error::Kind::kState:
      return "DNFT_STATE";
    case dnft::Error::Kind::kNumeric:
      return "DNFT_NUMERIC";
    case dnft::Error::Kind::kDistributed:
      return "DNFT_DISTRIBUTED";
    case dnft::Error::Kind::kBackend:
      break;
  }
  return "DNFT_BACKEND";
}

}  // namespace

Napi::Error make_js_error(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

void throw_js_error(Napi::Env env, const dnft::Error& error) {
  switch (error.kind()) {
    case dnft::Error::Kind::kType:
      throw Napi::TypeError::New(env, error.what());
    case dnft::Error::Kind::kRange:
      throw Napi::RangeError::New(env, error.what());
    default:
      throw make_js_error(env, error.what(), error_code(error.kind()));
  }
}

Napi::Promise PromiseWorker::Run(Napi::Env env, std::vector<Napi::Value> keep_alive, Work work, Result result) {
  auto* worker = new PromiseWorker(env, std::move(keep_alive), std::move(work), std::move(result));
  Napi::Promise promise = worker->deferred_.Promise();
  worker->Queue();
  return promise;
}

PromiseWorker::PromiseWorker(Napi::Env env, std::vector<Napi::Value> keep_alive, Work work, Result result)
    : Napi::AsyncWorker(env, "dnft:native"),
      deferred_(Napi::Promise::Deferred::New(env)),
      work_(std::move(work)),
      result_(std::move(result)) {
  for (Napi::Value& value : keep_alive) keep_alive_.push_back(Napi::Persistent(value));
}

void PromiseWorker::Execute() {
  try {
    work_();
  } catch (const dnft::Error& e) {
    native_error_ = true;
    error_kind_ = e.kind();
    SetError(e.what());
  } catch (const std::bad_alloc&) {
    native_error_ = true;
    error_kind_ = dnft::Error::Kind::kRange;
    SetError("out of memory: the native allocation of this call failed");
  } catch (const std::exception& e) {
    SetError(e.what());
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  try {
    std::vector<Napi::Value> kept;
    kept.reserve(keep_alive_.size());
    for (const auto& ref : keep_alive_) kept.push_back(ref.Value());
    deferred_.Resolve(result_(env, kept));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& error) {
  Napi::Env env = Env();
  const std::string message = error.Message();
  if (!native_error_) {
    deferred_.Reject(make_js_error(env, message, "DNFT_BACKEND").Value());
  } else if (error_kind_ == dnft::Error::Kind::kType) {
    deferred_.Reject(Napi::TypeError::New(env, message).Value());
  } else if (error_kind_ == dnft::Error::Kind::kRange) {
    deferred_.Reject(Napi::RangeError::New(env, message).Value());
  } else {
    deferred_.Reject(make_js_error(env, message, error_code(error_kind_)).Value());
  }
}

}  // namespace dnft::addon
