// The simulator's fiber switch (native/cudasim/src/executor.cpp): a context is the stack pointer of a suspended
// fiber, a switch saves the callee-saved registers on the current stack and resumes another. On x86-64 our own
// (fiber_switch.cpp), which leaves the SSE and x87 control words alone: Boost.Context's switch saves and restores
// them on every jump, a third of a jump's cost, and no kernel changes them. Elsewhere Boost.Context's fcontext.
#pragma once

#include <cstddef>

#if !(defined(__x86_64__) && defined(__ELF__))
#include <boost/context/detail/fcontext.hpp>
#endif

namespace cudasim {

#if defined(__x86_64__) && defined(__ELF__)
using FiberContext = void*;
// What a switch hands the fiber it resumes: the context of the one that switched away, and its data.
struct FiberTransfer {
  FiberContext fctx;
  void* data;
};
extern "C" FiberTransfer cudasim_switch_context(FiberContext to, void* data);
// A fresh context on the stack whose highest byte is top - 1: the first switch to it calls entry, which must never
// return.
FiberContext make_fiber_context(char* top, void (*entry)(FiberTransfer));
inline FiberTransfer switch_fiber_context(FiberContext to, void* data) { return cudasim_switch_context(to, data); }
#else
using FiberContext = boost::context::detail::fcontext_t;
using FiberTransfer = boost::context::detail::transfer_t;
inline FiberContext make_fiber_context(char* top, void (*entry)(FiberTransfer)) {
  return boost::context::detail::make_fcontext(top, 0, entry);
}
inline FiberTransfer switch_fiber_context(FiberContext to, void* data) {
  return boost::context::detail::jump_fcontext(to, data);
}
#endif

}  // namespace cudasim
