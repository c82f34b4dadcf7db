# A fixed address beyond TASK_SIZE.
mmap 0x800000000000 1p rw private|anonymous|fixed   => ENOMEM
a = mmap 0x800000000000 1p rw private|anonymous
