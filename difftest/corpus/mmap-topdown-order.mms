# Successive mmap(0) calls go down from mmap_base.
a = mmap 0 1p rw private|anonymous
b = mmap 0 1p rw private|anonymous
c = mmap 0 3p r private|anonymous
maps
