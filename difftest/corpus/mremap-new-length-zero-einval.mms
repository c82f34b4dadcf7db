a = mmap 0 2p rw private|anonymous
mremap $a 2p 0 maymove     => EINVAL
