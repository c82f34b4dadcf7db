# brk never reports an error: it returns the current break.
b = brk 0
brk 0x1000
brk 0
