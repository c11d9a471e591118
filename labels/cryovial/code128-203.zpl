^XA
^CI28
^PW256
^LL104
^LH0,0
^FO12,4^BY1^BCN,30,N,N,N,A^FH^FD${barcode}^FS
^FO12,38^A0N,14,10^FH^FD${barcode}^FS
^FO172,38^A0N,14,10^FB72,1,0,R^FH^FD${position}^FS
^FO12,55^A0N,20,12^FH^FD${study_id}^FS
^FO180,55^A0N,20,8^FB64,1,0,R^FH^FD${timepoint}^FS
^FO12,80^A0N,16,9^FH^FD${material} ${aliquot_type}^FS
^FO164,80^A0N,16,8^FB80,1,0,R^FH^FD${date}^FS
^XZ
