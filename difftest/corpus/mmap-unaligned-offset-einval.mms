# mmap(2): EINVAL if offset is not a multiple of the page size.
mmap 0 1p rw private|anonymous -1 1     => EINVAL
mmap 0 1p rw private|anonymous -1 100   => EINVAL
