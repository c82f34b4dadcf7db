# mmap(2): flags must contain exactly one of MAP_PRIVATE or MAP_SHARED.
mmap 0 1p rw anonymous     => EINVAL
