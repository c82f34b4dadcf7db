a = mmap 0 2p rw private|anonymous
r = mmap 0 4p none private|anonymous
mremap $a 2p 2p fixed $r   => EINVAL
