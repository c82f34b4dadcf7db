# A hint below mmap_min_addr is not an error: mmap picks elsewhere.
a = mmap 0 1p rw private|anonymous      => ok
b = mmap 0x100 1p rw private|anonymous  => ok
maps
