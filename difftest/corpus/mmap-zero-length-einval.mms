# mmap(2): EINVAL if length was 0.
mmap 0 0 rw private|anonymous           => EINVAL
