# mmap(2): EBADF if fd is not a valid descriptor (and MAP_ANONYMOUS was not set).
mmap 0 1p r private 999 0  => EBADF
mmap 0 1p r shared 999 0   => EBADF
