;; The smallest module the ABI accepts: memory, alloc, dealloc, process_message.
(module
  (memory (export "memory") 1 16)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "dealloc") (param i32 i32))
  (func (export "process_message") (param i32 i32) (result i32) (i32.const 0)))
