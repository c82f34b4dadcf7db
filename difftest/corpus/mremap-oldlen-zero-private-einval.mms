# old_size 0 only duplicates shared mappings.
a = mmap 0 2p rw private|anonymous
mremap $a 0 2p maymove     => EINVAL
