// The x86-64 System V fiber switch of fiber_switch.h. A suspended fiber's stack holds, from its saved stack pointer
// up: r12, r13, r14, r15, rbx, rbp, and the address it resumes at. A switch pushes those on the current stack, takes
// the target's stack pointer and pops them there; it returns the context left and the data passed both as a
// result (rax, rdx: a fiber resumed inside a switch) and as the two arguments of a fresh fiber's entry (rdi, rsi).
#include "fiber_switch.h"

#if defined(__x86_64__) && defined(__ELF__)

#include <cstdint>
#include <cstring>

asm(R"(
  .text
  .globl cudasim_switch_context
  .hidden cudasim_switch_context
  .type cudasim_switch_context, @function
  .p2align 4
cudasim_switch_context:
  pushq %rbp
  pushq %rbx
  pushq %r15
  pushq %r14
  pushq %r13
  pushq %r12
  movq %rsp, %rax
  movq %rdi, %rsp
  popq %r12
  popq %r13
  popq %r14
  popq %r15
  popq %rbx
  popq %rbp
  movq %rsi, %rdx
  movq %rax, %rdi
  ret
  .size cudasim_switch_context, .-cudasim_switch_context
  .section .note.GNU-stack,"",@progbits
  .text
)");

namespace cudasim {

FiberContext make_fiber_context(char* top, void (*entry)(FiberTransfer)) {
  // From the 16-byte aligned top down: a null return address for entry (whose frame then starts as a call's does,
  // rsp ≡ 8 mod 16, and where backtraces end), entry's address, six zeroed registers.
  auto* sp = reinterpret_cast<uintptr_t*>(reinterpret_cast<uintptr_t>(top) & ~uintptr_t{15});
  *--sp = 0;
  *--sp = reinterpret_cast<uintptr_t>(entry);
  sp -= 6;
  std::memset(sp, 0, 6 * sizeof(uintptr_t));
  return sp;
}

}  // namespace cudasim

#endif
