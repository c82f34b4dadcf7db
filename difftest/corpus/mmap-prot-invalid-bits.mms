mmap 0 1p 0x10 private|anonymous
mmap 0 1p 0x80000000 private|anonymous
