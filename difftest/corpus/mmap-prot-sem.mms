a = mmap 0 1p rw|sem private|anonymous
maps
