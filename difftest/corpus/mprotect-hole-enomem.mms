# mprotect(2): ENOMEM if the range contains unmapped pages; the part before the hole changes.
a = mmap 0 4p rw private|anonymous
munmap $a+2p 1p
mprotect $a 4p r           => ENOMEM
maps
