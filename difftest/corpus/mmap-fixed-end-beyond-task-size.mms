mmap 0x7ffffffff000 2p rw private|anonymous|fixed   => ENOMEM
