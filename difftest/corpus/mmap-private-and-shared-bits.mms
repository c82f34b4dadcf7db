# private|shared is the value of MAP_SHARED_VALIDATE (3).
a = mmap 0 1p rw private|shared|anonymous
maps
