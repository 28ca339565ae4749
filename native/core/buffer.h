// A typed allocation owned by one backend, freed with it (RAII).
#pragma once

#include <utility>

#include "core/backend.h"

namespace dnft {

template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& backend, size_t count)
      : backend_(&backend), ptr_(static_cast<T*>(backend.alloc(count * sizeof(T)))), count_(count) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { swap(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    Buffer(std::move(other)).swap(*this);
    return *this;
  }
  ~Buffer() {
    if (ptr_ != nullptr) backend_->release(ptr_);
  }

  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  bool empty() const { return ptr_ == nullptr; }

  void upload(const T* host, size_t count) { backend_->copy_to_device(ptr_, host, count * sizeof(T)); }
  void download(T* host, size_t count) const { backend_->copy_to_host(host, ptr_, count * sizeof(T)); }

 private:
  void swap(Buffer& other) noexcept {
    std::swap(backend_, other.backend_);
    std::swap(ptr_, other.ptr_);
    std::swap(count_, other.count_);
  }

  Backend* backend_ = nullptr;
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Grows a staging buffer to at least `count` elements (contents are not kept).
template <typename T>
void ensure(Buffer<T>& buffer, Backend& backend, size_t count) {
  if (buffer.size() < count) buffer = Buffer<T>(backend, count);
}

}  // namespace dnft
