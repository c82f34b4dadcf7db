r = mmap 0 4p none private|anonymous
mmap $r+1 1p rw private|anonymous|fixed => EINVAL
maps
